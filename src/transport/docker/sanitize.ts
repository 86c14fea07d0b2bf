/**
 * Keeping URLs' secrets out of messages. Signed blob URLs carry credentials in
 * their query, and URLs may carry user info: every URL in text that is not
 * ours (a runtime's wording of a fetch failure, a server's error body) is cut
 * down to scheme, host and path before it goes into a message, whatever the
 * wording around it.
 *
 * @module
 */

/** A URL in free text: a scheme, `://`, then anything up to white space. */
const URL_IN_TEXT = /\b[a-z][a-z0-9+.-]*:\/\/\S*/gi;

/**
 * `text` with every URL in it cut down to scheme, host and path: user info,
 * query and fragment are dropped (up to the next white space, so nothing of
 * them survives whatever follows). A URL opened by `(` keeps the `)` and
 * punctuation that close it.
 */
export function sanitizeUrls(text: string): string {
  return text.replace(URL_IN_TEXT, (url, at: number) => {
    const scheme = url.slice(0, url.indexOf("://") + 3);
    const rest = url.slice(scheme.length);
    const end = rest.search(/[?#]/);
    let kept = end < 0 ? rest : rest.slice(0, end);
    const tail = end < 0 ? "" : rest.slice(end);
    const slash = kept.indexOf("/");
    const authority = slash < 0 ? kept : kept.slice(0, slash);
    kept = authority.slice(authority.lastIndexOf("@") + 1) + (slash < 0 ? "" : kept.slice(slash));
    let close = "";
    if (text[at - 1] === "(") {
      close = /\)[:;,.]*$/.exec(tail)?.[0] ?? "";
      const own = /\)[:;,.]*$/.exec(kept);
      if (!close && own) {
        close = own[0];
        kept = kept.slice(0, -close.length);
      }
    }
    return scheme + kept + close;
  });
}

/**
 * The text of a failure, for a message: the reason fetch() keeps in `cause`
 * (its own message is a bare "fetch failed"), else the error's message, with
 * every URL sanitised ({@link sanitizeUrls}) and on one line. The only way a
 * runtime's wording reaches a message.
 */
export function failureText(e: unknown): string {
  const cause = e instanceof Error && e.cause instanceof Error ? e.cause.message : undefined;
  const raw = cause ?? (e instanceof Error ? e.message : String(e));
  return sanitizeUrls(raw).replace(/\s+/g, " ").trim();
}
