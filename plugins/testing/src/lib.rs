//! A test backend: what it does is chosen by the object's name, so that one
//! component can exercise every path of the host (custom routing, host calls,
//! typed errors, traps, timeouts, memory and output limits). Never route
//! production objects to it.
//!
//! Names: `echo:<text>`, `config:<key>`, `param:<key>`,
//! `call:<product>:<action>:<api-version>` (parameters from the object's
//! `parameters`), `misread:<product>:<action>:<api-version>` (the same call,
//! every failure reported as not found, as a careless plugin might), `error:<not-found|denied|invalid|unavailable|other>`,
//! `panic`, `loop`, `sleep:<ms>`, `alloc:<MiB>`, `big:<bytes>`, `log:<lines>`,
//! `calls:<n>` (n host calls), `leak:<n>` (n WASI streams, never dropped),
//! `http:<url>` (GET through the host),
//! `token:<audience>`, `secret:<key>`, `pod`.
//!
//! Any config key is accepted; a config key `reject` makes validation fail
//! with its value.

use plugin_sdk::cloud::{self, ApiRequest};
use plugin_sdk::{
    Backend, Config, FetchError, FetchedObject, ObjectRequest, PluginInfo, http, identity, log,
};

struct Testing;

impl Backend for Testing {
    fn describe() -> PluginInfo {
        PluginInfo::new("testing", env!("CARGO_PKG_VERSION"))
            .about("Test backend: the object name says what to do")
            .config("reject", "makes validation fail with this message", false)
            .parameter("*", "passed to call:... as API parameters", false)
    }

    fn validate(config: &Config) -> Result<(), String> {
        match config.get("reject") {
            Some(message) => Err(message.to_string()),
            None => Ok(()),
        }
    }

    fn fetch(request: ObjectRequest) -> Result<FetchedObject, FetchError> {
        let version = request.version.clone().unwrap_or_else(|| "1".into());
        let (verb, arg) = request
            .name
            .split_once(':')
            .unwrap_or((request.name.as_str(), ""));
        let contents: Vec<u8> = match verb {
            "echo" => arg.as_bytes().to_vec(),
            "config" => request
                .config(arg)
                .ok_or_else(|| FetchError::InvalidRequest(format!("no config key {arg:?}")))?
                .as_bytes()
                .to_vec(),
            "param" => request
                .parameter(arg)
                .ok_or_else(|| FetchError::InvalidRequest(format!("no parameter {arg:?}")))?
                .as_bytes()
                .to_vec(),
            "call" | "misread" => {
                let mut parts = arg.splitn(3, ':');
                let (product, action, api_version) = (
                    parts.next().unwrap_or_default(),
                    parts.next().unwrap_or_default(),
                    parts.next().unwrap_or_default(),
                );
                let mut call = ApiRequest::new(product, action, api_version)
                    .endpoint(request.endpoint.clone());
                for (k, v) in &request.parameters {
                    call = call.param(k, v.clone());
                }
                let context = format!("{product} {action}");
                call.send()
                    .map_err(|e| match verb {
                        "misread" => {
                            FetchError::NotFound(format!("{context}: {}", cloud::describe(&e)))
                        }
                        _ => cloud::default_fetch_error(&context, &e),
                    })?
                    .body
            }
            "error" => {
                let message = format!("requested {arg} error");
                return Err(match arg {
                    "not-found" => FetchError::NotFound(message),
                    "denied" => FetchError::PermissionDenied(message),
                    "invalid" => FetchError::InvalidRequest(message),
                    "unavailable" => FetchError::Unavailable(message),
                    _ => FetchError::Other(message),
                });
            }
            "panic" => panic!("testing plugin asked to panic"),
            "loop" => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "sleep" => {
                std::thread::sleep(std::time::Duration::from_millis(number(arg)?));
                b"slept".to_vec()
            }
            "alloc" => {
                let mib = number(arg)? as usize;
                let mut keep: Vec<Vec<u8>> = Vec::new();
                for _ in 0..mib {
                    keep.push(vec![1u8; 1 << 20]);
                }
                format!("allocated {} MiB", keep.len()).into_bytes()
            }
            "big" => vec![b'x'; number(arg)? as usize],
            "leak" => {
                for _ in 0..number(arg)? {
                    leak_stream();
                }
                b"leaked".to_vec()
            }
            "calls" => {
                for _ in 0..number(arg)? {
                    let _ = identity::pod();
                }
                b"called".to_vec()
            }
            "http" => {
                let response = http::get(arg)
                    .send()
                    .map_err(|e| http::fetch_error(arg, &e))?;
                format!(
                    "{} {}",
                    response.status(),
                    String::from_utf8_lossy(response.body())
                )
                .into_bytes()
            }
            "token" => identity::service_account_token(arg)?.into_bytes(),
            "secret" => identity::node_publish_secret(arg)?
                .unwrap_or_else(|| "<none>".into())
                .into_bytes(),
            "pod" => {
                let pod = identity::pod()?;
                format!(
                    "{}/{} {} {}",
                    pod.namespace, pod.name, pod.uid, pod.service_account
                )
                .into_bytes()
            }
            "log" => {
                for i in 0..number(arg)? {
                    log::info(&format!("line {i}"));
                }
                b"logged".to_vec()
            }
            _ => {
                return Err(FetchError::NotFound(format!(
                    "unknown test object {:?}",
                    request.name
                )));
            }
        };
        Ok(FetchedObject::new(contents, version))
    }
}

fn number(arg: &str) -> Result<u64, FetchError> {
    arg.parse()
        .map_err(|_| FetchError::InvalidRequest(format!("{arg:?} is not a number")))
}

plugin_sdk::export_backend!(Testing);

/// Takes a host resource (a stderr stream) and never gives it back.
#[cfg(target_arch = "wasm32")]
fn leak_stream() {
    std::mem::forget(wasip2::cli::stderr::get_stderr());
}

#[cfg(not(target_arch = "wasm32"))]
fn leak_stream() {}
