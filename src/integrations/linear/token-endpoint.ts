/** Linear's OAuth token endpoint, at LINEAR_API_URL's origin (so tests can point it at a fake). */
export function tokenEndpoint(apiUrl: string | undefined): string {
  return `${new URL(apiUrl ?? "https://api.linear.app/graphql").origin}/oauth/token`;
}
