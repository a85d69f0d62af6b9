/** The largest integer the API accepts: beyond it JSON numbers lose precision. */
export const MAX_INTEGER = Number.MAX_SAFE_INTEGER;
