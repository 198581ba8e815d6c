//! Who is calling. With `auth.mode = keys`, [`Authorized`] is the one place a request's
//! credential (an API key or a token) is checked for its endpoint's scope, in memory
//! (`sluice_core::auth::Verifier`); otherwise it lets every caller through, as before. A handler names the scope it needs by its type:
//! `Authorized<Writes>` for posting, `Authorized<Reads>` for reading messages.

use std::future::{Ready, ready};
use std::marker::PhantomData;

use actix_web::{FromRequest, HttpRequest, dev::Payload, web};
use sluice_admin::throttle::Verdict;
use sluice_core::auth::{Caller, Refused, prefix_of};
use sluice_proto::keys::Scope;

use crate::error::ApiError;
use crate::state::AppState;

/// The scope an endpoint needs.
pub trait Needs {
    /// The scope.
    const SCOPE: Scope;
}

/// `messages:write`: `POST /messages`, `POST /messages/batch`.
pub struct Writes;
impl Needs for Writes {
    const SCOPE: Scope = Scope::MessagesWrite;
}

/// `messages:read`: `GET /messages`.
pub struct Reads;
impl Needs for Reads {
    const SCOPE: Scope = Scope::MessagesRead;
}

/// A caller allowed the scope `N` needs: what its key is bound to with `auth.mode = keys`,
/// `None` when the server checks no keys.
pub struct Authorized<N> {
    /// The caller's key, when keys are checked.
    pub caller: Option<Caller>,
    scope: PhantomData<N>,
}

impl Authorized<Writes> {
    /// The caller's rate limit, when it has one.
    pub fn quota(&self) -> Option<crate::limit::Quota> {
        let caller = self.caller.as_ref()?;
        Some(crate::limit::Quota {
            id: caller.id.clone(),
            limit: caller.limit?,
        })
    }

    /// Who sends, as envelopes and rows record it: the credential's id, when callers are
    /// checked.
    pub fn key_id(&self) -> Option<String> {
        self.caller.as_ref().map(|caller| caller.id.clone())
    }

    /// Whether the caller's key may post `message`: as its user, into its channels.
    pub fn may_post(&self, message: &sluice_proto::message::NewMessage) -> Result<(), ApiError> {
        let Some(caller) = &self.caller else {
            return Ok(());
        };
        let (user, channel) = (message.user_id.get(), message.channel_id.get());
        caller
            .binding
            .may_post(user, channel)
            .map_err(ApiError::Refused)
    }
}

impl Authorized<Reads> {
    /// Whether the caller's key may read `channel_id` (`None`: every channel).
    pub fn may_read(&self, channel_id: Option<i64>) -> Result<(), ApiError> {
        let Some(caller) = &self.caller else {
            return Ok(());
        };
        caller
            .binding
            .may_read(channel_id)
            .map_err(ApiError::Refused)
    }
}

impl<N> Authorized<N> {
    /// Any caller, where no keys are checked.
    fn anyone() -> Self {
        Self {
            caller: None,
            scope: PhantomData,
        }
    }
}

impl<N: Needs> FromRequest for Authorized<N> {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let Some(state) = req.app_data::<web::Data<AppState>>() else {
            return ready(Ok(Self::anyone()));
        };
        let Some(verifier) = state.shared.verifier.as_deref() else {
            return ready(Ok(Self::anyone()));
        };
        let peer = req.peer_addr().map(|a| a.ip());
        let now = std::time::Instant::now();
        let bearer = sluice_http::bearer(req);
        let (by_address, by_prefix) = (&state.shared.key_guesses, &state.shared.prefix_guesses);
        if let Verdict::Throttled(wait) = by_address.admit(peer, now) {
            return ready(Err(ApiError::TooManyFailures(wait)));
        }
        // The prefix is copied only while some prefix is being guessed at.
        let prefix = || bearer.and_then(prefix_of).map(str::to_owned);
        if !by_prefix.is_quiet()
            && let Verdict::Throttled(wait) = by_prefix.admit(prefix(), now)
        {
            return ready(Err(ApiError::TooManyFailures(wait)));
        }
        let checked = verifier.check(bearer, N::SCOPE, chrono::Utc::now());
        // A guess at a known key counts against the address and the key. A key the ring does
        // not know does not: it may be one made in the last second, before this refresh.
        if checked == Err(Refused::WrongSecret) {
            by_address.failed(peer, now);
            by_prefix.failed(prefix(), now);
        }
        ready(
            checked
                .map(|caller| Self {
                    caller: Some(caller),
                    scope: PhantomData,
                })
                .map_err(ApiError::Refused),
        )
    }
}
