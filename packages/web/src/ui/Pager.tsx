import { Pagination } from '@mantine/core';

/** Page numbers under a server-paged table; nothing when everything fits on one page. */
export function Pager({
  total,
  pageSize,
  page,
  onChange,
  label = 'Pages',
}: {
  total: number;
  pageSize: number;
  page: number;
  onChange(page: number): void;
  label?: string;
}) {
  if (total <= pageSize) return null;
  return (
    <Pagination
      mt="sm"
      total={Math.ceil(total / pageSize)}
      value={page}
      onChange={onChange}
      aria-label={label}
      getControlProps={(control) => ({ 'aria-label': `${control} page` })}
    />
  );
}
