import { Table, VisuallyHidden } from '@mantine/core';
import type { ReactNode } from 'react';

interface Props {
  /** Column headers, in order; each is rendered as a `<th scope="col">`. */
  columns: ReactNode[];
  /** Below this width the table scrolls sideways instead of squeezing its columns. */
  minWidth: number;
  /** A caption for screen readers only. */
  caption?: string;
  highlightOnHover?: boolean;
  /** The body rows (`Table.Tr` elements). */
  children: ReactNode;
}

/** The list table every page uses: scrollable, striped, one header row, then the given rows. */
export function DataTable({ columns, minWidth, caption, highlightOnHover, children }: Props) {
  return (
    <Table.ScrollContainer minWidth={minWidth}>
      <Table striped highlightOnHover={highlightOnHover} verticalSpacing="sm">
        {caption !== undefined && <VisuallyHidden component="caption">{caption}</VisuallyHidden>}
        <Table.Thead>
          <Table.Tr>
            {columns.map((column, i) => (
              // The columns of a table are fixed, so their position is a stable key.
              <Table.Th key={i} scope="col">
                {column}
              </Table.Th>
            ))}
          </Table.Tr>
        </Table.Thead>
        <Table.Tbody>{children}</Table.Tbody>
      </Table>
    </Table.ScrollContainer>
  );
}
