//! Threads that run custom plugins: their own tokio runtime, at nice
//! [`CUSTOM_NICE`], so that the kernel gives the provider's own threads the
//! CPU first. Host calls that use the provider's shared clients (signed
//! Alibaba Cloud calls) are sent back to the main runtime, so that its
//! connections are never driven by these threads.

/// Threads of the custom plugins' runtime.
const CUSTOM_THREADS: usize = 1;
/// Their nice value (0 is the provider's; 19 the lowest priority).
const CUSTOM_NICE: i32 = 10;
/// Their name.
const THREAD_NAME: &str = "custom-plugins";

/// The custom plugins' runtime.
pub(crate) struct CustomThreads {
    runtime: Option<tokio::runtime::Runtime>,
}

/// The custom plugins' threads could not be started.
#[derive(Debug, thiserror::Error)]
#[error("cannot start them: {0}")]
pub(crate) struct ThreadsError(#[source] pub(super) std::io::Error);

impl CustomThreads {
    /// Starts the threads.
    pub(crate) fn start() -> Result<CustomThreads, ThreadsError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(CUSTOM_THREADS)
            .max_blocking_threads(CUSTOM_THREADS)
            .thread_name(THREAD_NAME)
            .enable_all()
            .on_thread_start(|| {
                let tid = rustix::thread::gettid();
                if let Err(e) = rustix::process::setpriority_process(Some(tid), CUSTOM_NICE) {
                    tracing::warn!(error = %e, "cannot lower the priority of a custom plugin thread");
                }
            })
            .build()
            .map_err(ThreadsError)?;
        Ok(CustomThreads {
            runtime: Some(runtime),
        })
    }

    /// Runs `future` on the threads.
    pub(crate) fn spawn<F>(&self, future: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.runtime
            .as_ref()
            .expect("present until dropped")
            .spawn(future)
    }
}

impl Drop for CustomThreads {
    fn drop(&mut self) {
        // Dropping a runtime may block; from inside another runtime that
        // panics, so let its threads wind down in the background.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn futures_run_on_named_threads_of_lower_priority() {
        let threads = CustomThreads::start().unwrap();
        let caller = std::thread::current().id();
        let (name, nice, thread) = threads
            .spawn(async {
                let current = std::thread::current();
                let nice = rustix::process::getpriority_process(Some(rustix::thread::gettid()));
                (current.name().map(str::to_string), nice, current.id())
            })
            .await
            .unwrap();
        assert_eq!(name.as_deref(), Some(THREAD_NAME));
        assert_ne!(thread, caller, "not on the caller's thread");
        // Lowering one's priority needs no privilege, unless the process
        // already runs below it.
        let own = rustix::process::getpriority_process(None).unwrap();
        assert_eq!(nice.unwrap(), CUSTOM_NICE.max(own));
        // Dropped inside a runtime: no panic, the threads wind down.
        drop(threads);
    }
}
