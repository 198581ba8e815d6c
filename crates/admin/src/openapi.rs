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
        routes::audit,
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

#[cfg(test)]
mod tests {
    use utoipa::OpenApi;

    /// The document's bounds are the code's: utoipa takes only literals in them, so this is
    /// where the two are held together.
    #[test]
    fn the_documented_page_size_is_the_enforced_one() {
        let doc = serde_json::to_value(super::AdminApi::openapi()).expect("json");
        let params = &doc["paths"]["/admin/dead-letters"]["get"]["parameters"];
        let limit = params
            .as_array()
            .and_then(|p| p.iter().find(|p| p["name"] == "limit"))
            .expect("a limit parameter");
        assert_eq!(
            limit["schema"]["maximum"].as_u64(),
            Some(crate::routes::MAX_LIST as u64)
        );
    }
}
