import '@mantine/core/styles.css';
import '@mantine/notifications/styles.css';

import { StrictMode, useState } from 'react';
import { createRoot } from 'react-dom/client';
import { BrowserRouter } from 'react-router';
import { AppRoutes } from './App';
import { makeQueryClient, Providers } from './Providers';

function Root() {
  const [client] = useState(makeQueryClient);
  return (
    <BrowserRouter>
      <Providers client={client}>
        <AppRoutes />
      </Providers>
    </BrowserRouter>
  );
}

const root = document.getElementById('root');
if (!root) throw new Error('#root missing');
createRoot(root).render(
  <StrictMode>
    <Root />
  </StrictMode>,
);
