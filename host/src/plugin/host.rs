//! The host side of the plugin imports: signed Alibaba Cloud calls and logging.

use super::PluginState;
use super::bindings::alibabacloud_csi::plugin::{alibaba_cloud, log, types};
use super::{LOG_LINE_MAX, LOG_LINES_PER_FETCH};
use crate::cloud::{ApiCall, ApiError};

impl types::Host for PluginState {}

impl alibaba_cloud::Host for PluginState {
    async fn call(
        &mut self,
        request: alibaba_cloud::ApiRequest,
    ) -> wasmtime::Result<Result<alibaba_cloud::ApiResponse, alibaba_cloud::ApiError>> {
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
        let result = self.session.call(&call).await;
        if let Err(error) = &result {
            tracing::debug!(plugin = %self.plugin, mount = %self.mount, %error, "Alibaba Cloud call failed");
        }
        Ok(result
            .map(|r| alibaba_cloud::ApiResponse {
                body: r.body,
                request_id: r.request_id,
            })
            .map_err(|e| match e {
                ApiError::Service(s) => {
                    alibaba_cloud::ApiError::Service(alibaba_cloud::ServiceError {
                        http_status: s.http_status,
                        code: s.code,
                        message: s.message,
                        request_id: s.request_id,
                    })
                }
                ApiError::Denied(m) => alibaba_cloud::ApiError::Denied(m),
                ApiError::Credentials(m) => alibaba_cloud::ApiError::Credentials(m),
                ApiError::Timeout(m) => alibaba_cloud::ApiError::Timeout(m),
                ApiError::Transport(m) => alibaba_cloud::ApiError::Transport(m),
            }))
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
