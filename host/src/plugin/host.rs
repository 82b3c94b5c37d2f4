//! The host side of the plugin imports: signed Alibaba Cloud calls, outbound
//! HTTP, the pod's identity and logging — each checked against what the
//! operator granted, and counted against the fetch's host-call budget.

use super::bindings::alibabacloud_csi::plugin::{alibaba_cloud, http, identity, log, types};
use super::egress::EgressError;
use super::store::HostFailure;
use super::store::{LOG_LINE_MAX, LOG_LINES_PER_FETCH, PluginState};
use crate::cloud::{ApiCall, ApiError};
use crate::identity::tokens::token_for_audience;
use crate::session::SessionError;

impl PluginState {
    /// Counts a host call; past the budget the plugin is stopped (a trap),
    /// so a call storm cannot outlast its limit.
    fn count_call(&mut self) -> wasmtime::Result<()> {
        self.host_calls += 1;
        if self.host_calls > self.grants.max_host_calls {
            self.host_call_limit_hit = true;
            return Err(wasmtime::Error::msg(format!(
                "more than {} host calls",
                self.grants.max_host_calls
            )));
        }
        Ok(())
    }

    fn during_load(&self) -> String {
        format!(
            "the {} plugin cannot use host services while it is loaded (describe, validate)",
            self.plugin
        )
    }
}

impl types::Host for PluginState {}

impl alibaba_cloud::Host for PluginState {
    async fn call(
        &mut self,
        request: alibaba_cloud::ApiRequest,
    ) -> wasmtime::Result<Result<alibaba_cloud::ApiResponse, alibaba_cloud::ApiError>> {
        self.count_call()?;
        if !self.grants.alibaba_cloud {
            return Ok(Err(alibaba_cloud::ApiError::Denied(format!(
                "the {} plugin is not granted Alibaba Cloud calls (plugins.{}.capabilities.alibaba_cloud)",
                self.plugin, self.plugin
            ))));
        }
        let Some(session) = self.session.clone() else {
            return Ok(Err(alibaba_cloud::ApiError::Denied(self.during_load())));
        };
        let call = ApiCall {
            product: request.product,
            action: request.action,
            version: request.version,
            parameters: request.parameters,
            endpoint: request.endpoint,
        };
        tracing::debug!(
            plugin = %self.plugin,
            mount = %self.mount,
            product = %call.product,
            action = %call.action,
            "plugin calls Alibaba Cloud"
        );
        // On the main runtime: the shared client's connections are driven
        // there, never by the custom plugins' threads.
        let result = match self.main.as_ref() {
            Some(main) => main
                .spawn(async move { session.call(&call).await })
                .await
                .unwrap_or_else(|e| {
                    Err(SessionError::Api(ApiError::Transport(format!(
                        "the host failed while sending the call: {e}"
                    ))))
                }),
            None => session.call(&call).await,
        };
        if let Err(error) = &result {
            tracing::debug!(plugin = %self.plugin, mount = %self.mount, %error, "Alibaba Cloud call failed");
        }
        Ok(result
            .map(|r| alibaba_cloud::ApiResponse {
                body: r.body,
                request_id: r.request_id,
            })
            .map_err(|e| match e {
                SessionError::Credentials { message, retryable } => {
                    // The host's failure, not the backend's: the fetch ends
                    // with the host's classification whatever the plugin
                    // makes of this error (see `Plugin::classify`).
                    self.host_failure = Some(HostFailure::Credentials { retryable });
                    alibaba_cloud::ApiError::Credentials(message)
                }
                SessionError::Api(ApiError::Service(s)) => {
                    alibaba_cloud::ApiError::Service(alibaba_cloud::ServiceError {
                        http_status: s.http_status,
                        code: s.code,
                        message: s.message,
                        request_id: s.request_id,
                    })
                }
                SessionError::Api(ApiError::Denied(m)) => alibaba_cloud::ApiError::Denied(m),
                SessionError::Api(ApiError::Timeout(m)) => alibaba_cloud::ApiError::Timeout(m),
                SessionError::Api(ApiError::Transport(m)) => alibaba_cloud::ApiError::Transport(m),
            }))
    }
}

impl http::Host for PluginState {
    async fn send(
        &mut self,
        request: http::Request,
    ) -> wasmtime::Result<Result<http::Response, http::HttpError>> {
        self.count_call()?;
        let Some(egress) = self.grants.egress.clone() else {
            return Ok(Err(http::HttpError::Denied(format!(
                "the {} plugin is not granted outbound HTTP (plugins.{}.capabilities.http)",
                self.plugin, self.plugin
            ))));
        };
        if self.session.is_none() {
            return Ok(Err(http::HttpError::Denied(self.during_load())));
        }
        tracing::debug!(plugin = %self.plugin, mount = %self.mount, method = %request.method, "plugin sends an HTTP request");
        let result = egress
            .send(
                &request.method,
                &request.url,
                &request.headers,
                request.body,
                self.deadline,
            )
            .await;
        if let Err(error) = &result {
            tracing::debug!(plugin = %self.plugin, mount = %self.mount, %error, "plugin HTTP request failed");
        }
        Ok(result
            .map(|r| http::Response {
                status: r.status,
                headers: r.headers,
                body: r.body,
            })
            .map_err(|e| match e {
                EgressError::Denied(m) => http::HttpError::Denied(m),
                EgressError::Timeout(m) => http::HttpError::Timeout(m),
                EgressError::Transport(m) => http::HttpError::Transport(m),
                EgressError::TooLarge(m) => http::HttpError::TooLarge(m),
            }))
    }
}

impl identity::Host for PluginState {
    async fn pod(
        &mut self,
    ) -> wasmtime::Result<Result<identity::PodInfo, identity::IdentityError>> {
        self.count_call()?;
        if !self.grants.pod_info {
            return Ok(Err(identity::IdentityError::Denied(format!(
                "the {} plugin is not granted the pod's identity (plugins.{}.capabilities.pod_info)",
                self.plugin, self.plugin
            ))));
        }
        let Some(session) = &self.session else {
            return Ok(Err(identity::IdentityError::Denied(self.during_load())));
        };
        let pod = &session.mount_identity().pod;
        Ok(Ok(identity::PodInfo {
            namespace: pod.namespace.clone(),
            name: pod.name.clone(),
            uid: pod.uid.clone(),
            service_account: pod.service_account.clone(),
        }))
    }

    async fn service_account_token(
        &mut self,
        audience: String,
    ) -> wasmtime::Result<Result<String, identity::IdentityError>> {
        self.count_call()?;
        if !self.grants.audiences.contains(&audience) {
            return Ok(Err(identity::IdentityError::Denied(format!(
                "the {} plugin is not granted tokens for audience {audience:?} (plugins.{}.capabilities.service_account_audiences)",
                self.plugin, self.plugin
            ))));
        }
        let Some(session) = &self.session else {
            return Ok(Err(identity::IdentityError::Denied(self.during_load())));
        };
        let Some(tokens) = &session.mount_identity().service_account_tokens else {
            return Ok(Err(identity::IdentityError::NotFound(format!(
                "the driver sent no service account token; add {{audience: {audience}}} to tokenRequests of the CSIDriver secrets-store.csi.k8s.io"
            ))));
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or_default();
        tracing::debug!(plugin = %self.plugin, mount = %self.mount, %audience, "plugin reads a service account token");
        Ok(token_for_audience(&tokens.0, &audience, now)
            .map(|t| t.token.0)
            .map_err(|e| identity::IdentityError::NotFound(e.0)))
    }

    async fn node_publish_secret(
        &mut self,
        key: String,
    ) -> wasmtime::Result<Result<Option<String>, identity::IdentityError>> {
        self.count_call()?;
        if !self
            .grants
            .secret_keys
            .iter()
            .any(|k| k.eq_ignore_ascii_case(&key))
        {
            return Ok(Err(identity::IdentityError::Denied(format!(
                "the {} plugin is not granted the nodePublishSecretRef key {key:?} (plugins.{}.capabilities.node_publish_secret_keys)",
                self.plugin, self.plugin
            ))));
        }
        let Some(session) = &self.session else {
            return Ok(Err(identity::IdentityError::Denied(self.during_load())));
        };
        Ok(Ok(session
            .mount_identity()
            .node_publish_secrets
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(&key))
            .map(|(_, v)| v.0.clone())))
    }
}

impl log::Host for PluginState {
    async fn log(&mut self, level: log::Level, message: String) -> wasmtime::Result<()> {
        self.log_lines += 1;
        if self.log_lines > LOG_LINES_PER_FETCH {
            if self.log_lines == LOG_LINES_PER_FETCH + 1 {
                tracing::warn!(plugin = %self.plugin, mount = %self.mount, "plugin log limit reached; dropping further lines of this fetch");
            }
            return Ok(());
        }
        let mut message = message;
        if message.len() > LOG_LINE_MAX {
            let mut end = LOG_LINE_MAX;
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            message.truncate(end);
        }
        let (plugin, mount) = (&self.plugin, &self.mount);
        match level {
            log::Level::Trace => tracing::trace!(%plugin, %mount, "{message}"),
            log::Level::Debug => tracing::debug!(%plugin, %mount, "{message}"),
            log::Level::Info => tracing::info!(%plugin, %mount, "{message}"),
            log::Level::Warn => tracing::warn!(%plugin, %mount, "{message}"),
            log::Level::Error => tracing::error!(%plugin, %mount, "{message}"),
        }
        Ok(())
    }
}
