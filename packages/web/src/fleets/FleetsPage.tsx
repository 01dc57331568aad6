export function FleetsPage() {
  return null;
}
