import type { BackendError } from "../../lib/backend";

/** What a paged list's footer needs of its infinite query. */
interface PagedQuery {
  hasNextPage: boolean;
  isFetchingNextPage: boolean;
  isFetchNextPageError: boolean;
  isRefetchError: boolean;
  error: BackendError | null;
  fetchNextPage: () => Promise<unknown>;
}

/** Under a paged list: "Load more" while there are pages left, and the precise error of a failed next page or reload. */
export function LoadMore({ query }: { query: PagedQuery }) {
  return (
    <>
      {query.hasNextPage && (
        <div className="load-more">
          <button type="button" onClick={() => void query.fetchNextPage()} disabled={query.isFetchingNextPage}>
            {query.isFetchingNextPage ? "Loading…" : "Load more"}
          </button>
        </div>
      )}
      {query.error && (query.isFetchNextPageError || query.isRefetchError) && (
        <p className="form-error" role="alert">
          Could not {query.isFetchNextPageError ? "load more" : "reload"}: {query.error.message}
          <code className="code-tag">{query.error.code}</code>
        </p>
      )}
    </>
  );
}
