import { Badge, createTheme } from '@mantine/core';

export const theme = createTheme({
  primaryColor: 'indigo',
  defaultRadius: 'md',
  fontFamily: 'system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif',
  components: {
    // Badges show raw values (session states, "online"): keep their case as is for
    // readers and for anything that reads the rendered text.
    Badge: Badge.extend({ defaultProps: { tt: 'none' } }),
  },
});
