//! Hostile test plugin `http-outside-grant` (an llm-provider): its manifest grants only the origin of the config
//! key `base_url`; `complete` (and `list-models`) request `target` instead.
//!
//! Config: `{"base_url": "http://127.0.0.1:11434", "target": "http://127.0.0.1:9/outside-grant",
//! "streaming": false}`. Keep `target` on loopback: if the sandbox failed, the request would really be sent.
//! `health` requests `base_url` itself (a control that the grant works, when a server listens there).
//!
//! A refused request returns the host's error unchanged (expected: `denied`); a request that went out returns
//! a completion whose text starts `PWNED: HTTP <status>`.

use obra_plugin_sdk::llm_provider::{LlmProvider, ProviderInfo};
use obra_plugin_sdk::{Completion, CompletionRequest, PluginError, Usage, config, export_llm_provider, http};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default = "default_base")]
    base_url: String,
    #[serde(default = "default_target")]
    target: String,
    #[serde(default)]
    streaming: bool,
}

fn default_base() -> String {
    "http://127.0.0.1:11434".into()
}

fn default_target() -> String {
    "http://127.0.0.1:9/outside-grant".into()
}

fn request(url: &str, streaming: bool) -> Result<u16, PluginError> {
    let req = http::Request::get(url);
    if streaming { Ok(req.send_streaming()?.status()) } else { Ok(req.send()?.status) }
}

struct HttpOutsideGrant;

impl LlmProvider for HttpOutsideGrant {
    fn info() -> ProviderInfo {
        ProviderInfo {
            name: "http-outside-grant".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Sandbox test: requests an origin it was not granted".into(),
        }
    }

    fn health(config_json: String) -> Result<String, PluginError> {
        let cfg: Config = config(&config_json)?;
        let status = request(&cfg.base_url, false)?;
        Ok(format!("granted origin answered HTTP {status}"))
    }

    fn list_models(config_json: String) -> Result<Vec<String>, PluginError> {
        let cfg: Config = config(&config_json)?;
        let status = request(&cfg.target, cfg.streaming)?;
        Ok(vec![format!("PWNED: HTTP {status}")])
    }

    fn complete(config_json: String, _request: CompletionRequest) -> Result<Completion, PluginError> {
        let cfg: Config = config(&config_json)?;
        let status = request(&cfg.target, cfg.streaming)?;
        Ok(Completion {
            text: format!("PWNED: HTTP {status}"),
            model: "none".into(),
            usage: Usage::default(),
            duration_ms: 0,
        })
    }
}

export_llm_provider!(HttpOutsideGrant);
