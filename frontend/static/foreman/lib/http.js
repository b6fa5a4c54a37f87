// @ts-check
// JSON over the HTTP API with the session cookie and Django's CSRF token.

/** @returns {string} */
function csrfToken() {
  const input = /** @type {HTMLInputElement|null} */ (document.querySelector("input[name=csrfmiddlewaretoken]"));
  return input?.value || "";
}

/**
 * GET (no body) or POST (with body) a JSON endpoint, or `method` (PATCH, DELETE); throws an Error
 * carrying the server's reason.
 * @param {string} url @param {any} [body] @param {string} [method] @returns {Promise<any>}
 */
export async function api(url, body, method) {
  const init = /** @type {RequestInit} */ ({ credentials: "same-origin", headers: { Accept: "application/json" } });
  if (body !== undefined || method) {
    init.method = method || "POST";
    init.headers = { ...init.headers, "Content-Type": "application/json", "X-CSRFToken": csrfToken() };
    init.body = JSON.stringify(body ?? {});
  }
  const response = await fetch(url, init);
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = { detail: text.slice(0, 200) }; }
  if (!response.ok) {
    const detail = data?.detail;
    throw new Error(typeof detail === "string" ? detail : Array.isArray(detail) ? detail.map((d) => d.msg).join("; ") : `HTTP ${response.status}`);
  }
  return data;
}
