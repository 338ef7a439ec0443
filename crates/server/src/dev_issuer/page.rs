//! The sign-in page and the problem page: plain semantic HTML, no script and
//! no style, served under a strict Content Security Policy. Everything echoed
//! from a request is escaped.

use std::fmt::Write;

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::request::{AuthorizationRequest, MAX_OPERATOR_NAME};

/// The policy both pages are served with.
pub(super) const CONTENT_SECURITY_POLICY: &str =
    "default-src 'none'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The hidden field carrying the requested scopes; `scope` carries the ticked ones.
pub(super) const REQUESTED_SCOPE_FIELD: &str = "requested_scope";

/// The operator name offered by default.
pub(super) const DEFAULT_OPERATOR: &str = "dev-operator";

/// An HTML page with the security headers.
pub(super) fn respond(status: StatusCode, html: String) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
            (header::CACHE_CONTROL, "no-store"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::X_FRAME_OPTIONS, "DENY"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        html,
    )
        .into_response()
}

/// `s` made safe for HTML text and double-quoted attribute values.
pub(super) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn document(title: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{title}</title>\n</head>\n<body>\n<main>\n{body}</main>\n</body>\n</html>\n"
    )
}

const NOTICE: &str = "<p><strong>This sign-in exists only in <code>biometric-passkey dev</code>, \
    on loopback.</strong> It is not an identity provider: there is no password, and whoever \
    can open this page can act as any operator. Deployments sign operators in with the \
    organisation's own OIDC provider.</p>\n";

/// The page explaining why a request was refused.
pub(super) fn problem(message: &str) -> String {
    document(
        "Development sign-in: request refused",
        &format!(
            "<h1>Development sign-in: request refused</h1>\n<p>{}</p>\n{NOTICE}",
            escape(message)
        ),
    )
}

fn hidden(out: &mut String, name: &str, value: &str) {
    let _ = writeln!(
        out,
        "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
        escape(name),
        escape(value)
    );
}

/// The sign-in form for a validated request. `is_management` tells which
/// requested scopes are offered as checkboxes; the others are granted as requested.
pub(super) fn sign_in(
    request: &AuthorizationRequest,
    is_management: impl Fn(&str) -> bool,
) -> String {
    let mut body = String::new();
    body.push_str("<h1>Development sign-in</h1>\n");
    body.push_str(NOTICE);
    body.push_str("<form method=\"post\" action=\"/dev-oidc/authorize\">\n");
    hidden(&mut body, "response_type", "code");
    hidden(&mut body, "client_id", &request.client_id);
    hidden(&mut body, "redirect_uri", &request.redirect_uri);
    hidden(&mut body, REQUESTED_SCOPE_FIELD, &request.scopes.join(" "));
    hidden(&mut body, "code_challenge", &request.code_challenge);
    hidden(&mut body, "code_challenge_method", "S256");
    if let Some(state) = &request.state {
        hidden(&mut body, "state", state);
    }
    if let Some(nonce) = &request.nonce {
        hidden(&mut body, "nonce", nonce);
    }
    let _ = write!(
        body,
        "<p><label for=\"sub\">Operator name</label><br>\n\
         <input type=\"text\" id=\"sub\" name=\"sub\" value=\"{DEFAULT_OPERATOR}\" \
         required maxlength=\"{MAX_OPERATOR_NAME}\" autocomplete=\"username\"></p>\n\
         <p>The name becomes the subject (<code>sub</code>) of your tokens and is recorded \
         on the audit events of your actions.</p>\n"
    );
    let (management, other): (Vec<&String>, Vec<&String>) =
        request.scopes.iter().partition(|s| is_management(s));
    body.push_str("<fieldset>\n<legend>Management scopes to grant</legend>\n");
    if management.is_empty() {
        body.push_str("<p>No management scopes were requested.</p>\n");
    }
    for scope in management {
        let scope = escape(scope);
        let _ = writeln!(
            body,
            "<p><input type=\"checkbox\" id=\"scope-{scope}\" name=\"scope\" value=\"{scope}\" checked> \
             <label for=\"scope-{scope}\">{scope}</label></p>"
        );
    }
    body.push_str("</fieldset>\n");
    if !other.is_empty() {
        let listed: Vec<String> = other
            .iter()
            .map(|s| format!("<code>{}</code>", escape(s)))
            .collect();
        let _ = writeln!(
            body,
            "<p>Also granted, as requested: {}.</p>",
            listed.join(", ")
        );
    }
    body.push_str("<p><button type=\"submit\">Sign in</button></p>\n</form>\n");
    document("Development sign-in", &body)
}
