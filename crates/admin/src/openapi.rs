//! The OpenAPI document of the admin routes and their bearer scheme; each server merges it into
//! its own.

use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

use crate::routes;

/// The admin routes.
#[derive(OpenApi)]
#[openapi(
    paths(
        routes::list,
        routes::requeue,
        routes::purge,
        routes::requeue_one,
        routes::delete_one,
    ),
    modifiers(&AdminToken),
    tags((name = "admin", description = "Dead letters; off unless this server's admin token is set"))
)]
pub struct AdminApi;

struct AdminToken;

impl utoipa::Modify for AdminToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "admin_token",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}
