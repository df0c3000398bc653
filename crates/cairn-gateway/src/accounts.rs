//! Sign-up, sign-in (OAuth2 password grant), refresh, sign-out, password
//! change and recovery, and the caller's own account.

use axum::Form;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::authn::{Authenticated, ClientAddr};
use crate::security::{cookie_token, refresh_cookie, require_same_origin, wants_cookie};
use crate::wire::accounts::{
    AcceptedResponse, ChangePasswordRequest, ForgotPasswordRequest, OAuthErrorResponse, RefreshRequest,
    RegisterRequest, ResetPasswordRequest, SessionHeader, TokenRequest,
};
use crate::wire::accounts::{TokenResponse, UserResponse};
use crate::{ApiError, ApiJson, AppState, Problem};

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(crate::v1(routes!(register)))
        .routes(crate::v1(routes!(token)))
        .routes(crate::v1(routes!(refresh)))
        .routes(crate::v1(routes!(logout)))
        .routes(crate::v1(routes!(forgot_password)))
        .routes(crate::v1(routes!(reset_password)))
        .routes(crate::v1(routes!(me, crate::lifecycle::delete_me)))
        .routes(crate::v1(routes!(change_password)))
}

/// Create an account. The first account of a deployment is its admin.
#[utoipa::path(post, path = "/auth/register", tag = "auth", request_body = RegisterRequest, responses(
    (status = 201, description = "The new account", body = UserResponse),
    (status = 409, description = "`email_taken`", body = Problem, content_type = "application/problem+json"),
    (status = 422, description = "`weak_password`, `invalid_email`, `invalid_input`", body = Problem,
     content_type = "application/problem+json"),
))]
async fn register(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    ApiJson(body): ApiJson<RegisterRequest>,
) -> Result<(StatusCode, ApiJson<UserResponse>), ApiError> {
    let user = state.auth.register(&body.email, &body.password, &body.display_name, &addr).await?;
    Ok((StatusCode::CREATED, ApiJson(UserResponse::from(&user))))
}

/// What the token endpoints answer when they refuse: OAuth2's error shape
/// for what OAuth2 defines, a problem document for everything else.
enum TokenError {
    OAuth { status: StatusCode, error: &'static str, description: String, retry_after: Option<u64> },
    Api(ApiError),
}

impl TokenError {
    fn invalid_request(description: &str) -> TokenError {
        let description = description.to_owned();
        TokenError::OAuth { status: StatusCode::BAD_REQUEST, error: "invalid_request", description, retry_after: None }
    }
}

impl From<cairn_auth::Error> for TokenError {
    fn from(error: cairn_auth::Error) -> Self {
        use cairn_auth::Error as E;
        let description = error.to_string();
        match error {
            E::InvalidCredentials | E::InvalidGrant(_) => TokenError::OAuth {
                status: StatusCode::BAD_REQUEST,
                error: "invalid_grant",
                description,
                retry_after: None,
            },
            E::Throttled { retry_after } => TokenError::OAuth {
                status: StatusCode::TOO_MANY_REQUESTS,
                error: "temporarily_unavailable",
                description,
                retry_after: Some(retry_after.as_secs().max(1)),
            },
            other => TokenError::Api(other.into()),
        }
    }
}

fn no_store(mut response: Response) -> Response {
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// How the client keeps its refresh token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Delivery {
    /// In the response body (API clients, scripts).
    Body,
    /// In the HttpOnly cookie, never readable by the page's script (the web app).
    Cookie,
}

impl Delivery {
    /// The cookie flow, for a browser page of Cairn's own origin only.
    fn of(state: &AppState, headers: &HeaderMap) -> Result<Delivery, ApiError> {
        if !wants_cookie(headers) {
            return Ok(Delivery::Body);
        }
        require_same_origin(&state.config, headers)?;
        Ok(Delivery::Cookie)
    }
}

/// The answer carrying a new session: the refresh token in the body or in
/// the cookie, as the client asked.
fn session_response(state: &AppState, session: cairn_auth::Session, delivery: Delivery) -> Response {
    let mut body = TokenResponse::from(session);
    let cookie = match delivery {
        Delivery::Body => None,
        Delivery::Cookie => body.refresh_token.take().map(|token| refresh_cookie(&state.config, Some(&token))),
    };
    let mut response = no_store(axum::Json(body).into_response());
    if let Some(cookie) = cookie {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

/// Ends the browser's cookie, whatever the answer.
fn clear_cookie(state: &AppState, mut response: Response) -> Response {
    response.headers_mut().append(header::SET_COOKIE, refresh_cookie(&state.config, None));
    response
}

impl IntoResponse for TokenError {
    fn into_response(self) -> Response {
        match self {
            TokenError::OAuth { status, error, description, retry_after } => {
                let body = OAuthErrorResponse { error, error_description: description };
                let mut response = (status, axum::Json(body)).into_response();
                if let Some(seconds) = retry_after {
                    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
                }
                no_store(response)
            }
            TokenError::Api(error) => error.into_response(),
        }
    }
}

/// Sign in: the OAuth2 password grant (RFC 6749 §4.3), as Swagger UI's
/// "Authorize" sends it. With `Cairn-Session: cookie` (the web app, from
/// its own origin only) the refresh token is set as an HttpOnly cookie
/// instead of being returned.
#[utoipa::path(post, path = "/auth/token", tag = "auth",
    params(SessionHeader),
    request_body(content = TokenRequest, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "Signed in", body = TokenResponse),
        (status = 400, description = "`invalid_grant`: wrong e-mail or password", body = OAuthErrorResponse),
        (status = 429, description = "Too many failed sign-ins; see `Retry-After`", body = OAuthErrorResponse),
    )
)]
async fn token(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    headers: HeaderMap,
    form: Result<Form<TokenRequest>, axum::extract::rejection::FormRejection>,
) -> Result<Response, TokenError> {
    let delivery = Delivery::of(&state, &headers).map_err(TokenError::Api)?;
    let Form(request) = form.map_err(|e| TokenError::invalid_request(&e.body_text()))?;
    let session = match request.grant_type.as_str() {
        "password" => {
            let (Some(username), Some(password)) = (request.username, request.password) else {
                return Err(TokenError::invalid_request("the password grant needs `username` and `password`"));
            };
            state.auth.sign_in(&username, &password, &addr).await?
        }
        "refresh_token" => {
            let Some(refresh_token) = request.refresh_token else {
                return Err(TokenError::invalid_request("the refresh_token grant needs `refresh_token`"));
            };
            state.auth.refresh(&refresh_token, &addr).await?
        }
        _ => {
            return Err(TokenError::OAuth {
                status: StatusCode::BAD_REQUEST,
                error: "unsupported_grant_type",
                description: "use `password` or `refresh_token`".to_owned(),
                retry_after: None,
            });
        }
    };
    Ok(session_response(&state, session, delivery))
}

/// Trade a refresh token for new tokens. Each refresh token works once;
/// presenting a used one ends its whole session (it was stolen). A token
/// from the cookie is answered with a new cookie.
#[utoipa::path(post, path = "/auth/refresh", tag = "auth", params(SessionHeader), request_body = RefreshRequest, responses(
    (status = 200, description = "New tokens", body = TokenResponse),
    (status = 400, description = "`invalid_grant`", body = OAuthErrorResponse),
    (status = 403, description = "`forbidden`: the cookie was sent from another site", body = Problem,
     content_type = "application/problem+json"),
))]
async fn refresh(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    headers: HeaderMap,
    ApiJson(body): ApiJson<RefreshRequest>,
) -> Result<Response, Response> {
    let (token, delivery) = match body.refresh_token {
        Some(token) => (token, Delivery::of(&state, &headers).map_err(IntoResponse::into_response)?),
        None => {
            require_same_origin(&state.config, &headers).map_err(IntoResponse::into_response)?;
            let Some(token) = cookie_token(&headers) else {
                let error = TokenError::invalid_request("send `refresh_token`, or sign in again (no session cookie)");
                return Err(clear_cookie(&state, error.into_response()));
            };
            (token, Delivery::Cookie)
        }
    };
    match state.auth.refresh(&token, &addr).await {
        Ok(session) => Ok(session_response(&state, session, delivery)),
        Err(error) => {
            let response = TokenError::from(error).into_response();
            Err(if delivery == Delivery::Cookie { clear_cookie(&state, response) } else { response })
        }
    }
}

/// Sign out: the session's refresh token stops working, and the browser's
/// refresh cookie is cleared.
#[utoipa::path(post, path = "/auth/logout", tag = "auth", security(("oauth2" = [])), responses(
    (status = 204, description = "Signed out"),
    (status = 401, description = "Not signed in", body = Problem, content_type = "application/problem+json"),
))]
async fn logout(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    Authenticated(principal): Authenticated,
) -> Result<Response, ApiError> {
    state.auth.logout(&principal, &addr).await?;
    Ok(clear_cookie(&state, StatusCode::NO_CONTENT.into_response()))
}

/// Ask for a password-recovery link by e-mail. The answer is the same
/// whether or not the address has an account.
#[utoipa::path(post, path = "/auth/password/forgot", tag = "auth", request_body = ForgotPasswordRequest, responses(
    (status = 202, description = "If the account exists, a link is on its way", body = AcceptedResponse),
))]
async fn forgot_password(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    ApiJson(body): ApiJson<ForgotPasswordRequest>,
) -> (StatusCode, ApiJson<AcceptedResponse>) {
    state.auth.forgot_password(&body.email, &addr);
    let detail = "if an account uses this address, a link to reset its password is on its way";
    (StatusCode::ACCEPTED, ApiJson(AcceptedResponse { status: "accepted", detail }))
}

/// Choose a new password with a recovery token. Ends every session.
#[utoipa::path(post, path = "/auth/password/reset", tag = "auth", request_body = ResetPasswordRequest, responses(
    (status = 204, description = "Password changed"),
    (status = 400, description = "`invalid_grant`: unknown, expired or used token", body = Problem,
     content_type = "application/problem+json"),
    (status = 422, description = "`weak_password`", body = Problem, content_type = "application/problem+json"),
))]
async fn reset_password(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    ApiJson(body): ApiJson<ResetPasswordRequest>,
) -> Result<Response, ApiError> {
    state.auth.reset_password(&body.token, &body.new_password, &addr).await?;
    // Every session ended; a browser's cookie holds nothing useful now.
    Ok(clear_cookie(&state, StatusCode::NO_CONTENT.into_response()))
}

/// The caller's account.
#[utoipa::path(get, path = "/me", tag = "account", security(("oauth2" = []), ("api_key" = [])), responses(
    (status = 200, description = "The caller", body = UserResponse),
    (status = 401, description = "Not signed in", body = Problem, content_type = "application/problem+json"),
))]
async fn me(Authenticated(principal): Authenticated) -> ApiJson<UserResponse> {
    ApiJson(UserResponse::from(principal.user.as_ref()))
}

/// Change the password. Every session ends; the answer carries a new one
/// (in the cookie with `Cairn-Session: cookie`).
#[utoipa::path(post, path = "/me/password", tag = "account", security(("oauth2" = [])),
    params(SessionHeader),
    request_body = ChangePasswordRequest,
    responses(
        (status = 200, description = "Changed; new tokens", body = TokenResponse),
        (status = 403, description = "Wrong current password", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`weak_password`", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn change_password(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    Authenticated(principal): Authenticated,
    headers: HeaderMap,
    ApiJson(body): ApiJson<ChangePasswordRequest>,
) -> Result<Response, ApiError> {
    let delivery = Delivery::of(&state, &headers)?;
    let session = state.auth.change_password(&principal, &body.current_password, &body.new_password, &addr).await?;
    Ok(session_response(&state, session, delivery))
}
