//! OOS (API 2019-06-01): `GetSecretParameter`.

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::{Api, Call, Product, format_time};
use crate::error::ApiError;
use crate::request::ApiRequest;

pub(crate) const VERSION: &str = "2019-06-01";

pub(crate) static GET_SECRET_PARAMETER: Api = Api {
    action: "GetSecretParameter",
    version: VERSION,
    product: Product::Oos,
    anonymous: false,
    object: parameter_name,
    handler: get_secret_parameter,
};

fn parameter_name(request: &ApiRequest) -> Option<&str> {
    request.param("Name")
}

fn not_found(name: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "EntityNotExists.Parameter",
        format!("The Parameter ({name}) does not exist."),
    )
}

fn get_secret_parameter(call: &mut Call<'_>) -> Result<Value, ApiError> {
    let name = call.required("Name")?;
    let with_decryption = call.bool_param("WithDecryption")?.unwrap_or(false);
    let wanted = call
        .param("ParameterVersion")
        .map(|v| {
            v.parse::<u32>().ok().filter(|n| *n >= 1).ok_or_else(|| {
                ApiError::invalid_parameter("ParameterVersion", "expected an integer from 1")
            })
        })
        .transpose()?;
    call.authorize(&format!("oos:parameter/{name}"))?;

    let parameters = &call.store.oos;
    let parameter = parameters.get(name).ok_or_else(|| not_found(name))?;
    let version = match wanted {
        Some(n) => parameter.versions.iter().find(|v| v.version == n),
        None => parameter.latest(),
    }
    .ok_or_else(|| not_found(name))?;
    let started = call.store.started_at;
    let created = parameter
        .versions
        .iter()
        .min_by_key(|v| v.version)
        .and_then(|v| v.updated_date)
        .unwrap_or(started);

    let mut body = json!({
        "Name": parameter.name,
        "Id": format!("p-{}", &alibabacloud_signature::sha256_hex(parameter.name.as_bytes())[..30]),
        "ParameterVersion": version.version,
        "Type": "Secret",
        "Description": parameter.description,
        "CreatedDate": format_time(created),
        "UpdatedDate": format_time(version.updated_date.unwrap_or(started)),
        "ShareType": "Private",
        "Tags": {},
    });
    if with_decryption {
        body["Value"] = Value::String(version.value.clone());
    }
    Ok(json!({ "Parameter": body }))
}
