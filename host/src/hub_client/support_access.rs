//! The customer's side of support access (decision 0027): grant, list and
//! withdraw support's access to this tenant's diagnostics or data on the hub.

use super::{json, HubClient, HubError};
use ledgerlink_protocol::api::path_segment;

impl HubClient {
    /// Grants support access for `hours` to `scopes` (`POST /v1/support-access`); the grant.
    pub fn grant_support_access(
        &self,
        hours: u32,
        scopes: &[&str],
        reason: Option<&str>,
    ) -> Result<serde_json::Value, HubError> {
        let body = serde_json::json!({ "hours": hours, "scopes": scopes, "reason": reason });
        let what = "the grant of support access";
        let response = self.send(what, || self.http.post(self.url("/v1/support-access")).json(&body))?;
        json(&self.settings.url, what, response)
    }

    /// The tenant's grants and the looks support took (`GET /v1/support-access`).
    pub fn support_access(&self) -> Result<serde_json::Value, HubError> {
        let what = "the list of support access";
        let response = self.send(what, || self.http.get(self.url("/v1/support-access")))?;
        json(&self.settings.url, what, response)
    }

    /// Withdraws a grant (`DELETE /v1/support-access/{id}`); the grant as it is now.
    pub fn revoke_support_access(&self, grant_id: &str) -> Result<serde_json::Value, HubError> {
        let what = format!("the withdrawal of grant {grant_id}");
        let url = self.url(&format!("/v1/support-access/{}", path_segment(grant_id)));
        let response = self.send(&what, || self.http.delete(&url))?;
        json(&self.settings.url, &what, response)
    }
}
