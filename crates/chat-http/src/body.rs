//! Reading a request body with a hard size limit, and the JSON field helpers of the
//! Laravel-style validation.

use crate::error::ApiError;
use actix_web::web::{Bytes, BytesMut, Payload};
use actix_web::HttpRequest;
use chat_core::{UserId, ValidationErrors};
use futures::StreamExt;
use serde_json::{Map, Value};

/// A path id that is not a positive integer names nothing: `404`.
pub(crate) fn path_id<T: std::str::FromStr>(raw: &str) -> Result<T, ApiError> {
    raw.parse().map_err(|_| ApiError::NotFound)
}

/// Reads the whole body of a JSON route: `415` for one not sent as `application/json`
/// (or `…+json`, SPEC §3.7), then as [`read_limited`].
pub async fn read_json(
    req: &HttpRequest,
    payload: Payload,
    limit: usize,
) -> Result<Bytes, ApiError> {
    if !is_json(req) {
        return Err(ApiError::UnsupportedMediaType);
    }
    read_limited(req, payload, limit).await
}

/// Reads the whole body, refusing with `413` as soon as it passes `limit` bytes (or when
/// `Content-Length` announces more), so an oversize body is never buffered.
pub async fn read_limited(
    req: &HttpRequest,
    mut payload: Payload,
    limit: usize,
) -> Result<Bytes, ApiError> {
    let announced = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > limit as u64) {
        return Err(ApiError::PayloadTooLarge);
    }
    let mut body = BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk =
            chunk.map_err(|_| ApiError::invalid("body", "The request body could not be read."))?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::PayloadTooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// Whether the request declares a JSON body: `application/json` or `application/…+json`,
/// parameters (`; charset=utf-8`) allowed.
fn is_json(req: &HttpRequest) -> bool {
    let Some(declared) = req
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = declared.split(';').next().unwrap_or_default().trim();
    let Some((kind, subtype)) = essence.split_once('/') else {
        return false;
    };
    kind.eq_ignore_ascii_case("application")
        && (subtype.eq_ignore_ascii_case("json")
            || subtype.len() > 5 && subtype[subtype.len() - 5..].eq_ignore_ascii_case("+json"))
}

/// The body as a JSON object, or the field error a Laravel client expects.
///
/// Fields are parsed one by one, so that a number beyond what a double holds
/// (`"lat": 1e999`, which PHP reads as infinity) is that field's error, not the body's:
/// it becomes the largest double of its sign, which every field then refuses as out
/// of range or of the wrong type.
pub fn json_object(body: &[u8]) -> Result<Map<String, Value>, ValidationErrors> {
    let not_an_object =
        || ValidationErrors::single("body", "The request body must be a JSON object.");
    let raw: Map<String, Value> = match serde_json::from_slice::<
        std::collections::BTreeMap<String, Box<serde_json::value::RawValue>>,
    >(body)
    {
        Ok(fields) => fields
            .into_iter()
            .map(|(name, raw)| Some((name, field_value(raw.get())?)))
            .collect::<Option<_>>()
            .ok_or_else(not_an_object)?,
        Err(_) => return Err(not_an_object()),
    };
    Ok(raw)
}

/// One field's JSON; a number literal too large for a double is the largest double.
fn field_value(raw: &str) -> Option<Value> {
    match serde_json::from_str::<Value>(raw) {
        Ok(value) => Some(value),
        Err(_) => {
            let huge = raw.trim().parse::<f64>().ok().filter(|n| n.is_infinite())?;
            serde_json::Number::from_f64(f64::MAX.copysign(huge)).map(Value::Number)
        }
    }
}

/// A field that must be a non-null string.
pub fn required_str<'a>(obj: &'a Map<String, Value>, field: &str) -> Result<&'a str, String> {
    match obj.get(field) {
        None | Some(Value::Null) => Err(format!("The {field} field is required.")),
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(format!("The {field} field must be a string.")),
    }
}

/// A field that must be a number (or, as Laravel's `numeric` allows, a numeric string).
pub fn required_number(obj: &Map<String, Value>, field: &str) -> Result<f64, String> {
    let n = match obj.get(field) {
        None | Some(Value::Null) => return Err(format!("The {field} field is required.")),
        Some(Value::Number(n)) => n.as_f64(),
        Some(Value::String(s)) => s.trim().parse::<f64>().ok(),
        Some(_) => None,
    };
    n.filter(|n| n.is_finite())
        .ok_or_else(|| format!("The {field} field must be a number."))
}

/// A field that must be a user id: a positive integer (a JSON integer or a string of
/// digits).
pub fn required_user_id(obj: &Map<String, Value>, field: &str) -> Result<UserId, String> {
    let n = match obj.get(field) {
        None | Some(Value::Null) => return Err(format!("The {field} field is required.")),
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(s)) => s.trim().parse::<i64>().ok(),
        Some(_) => None,
    };
    n.and_then(UserId::new)
        .ok_or_else(|| format!("The {field} field must be a positive integer."))
}

/// A field that may hold a list of user ids (absent or `null`: none), at most `max`
/// distinct ones; each element is checked as [`required_user_id`] checks one.
pub fn optional_user_ids(
    obj: &Map<String, Value>,
    field: &str,
    max: usize,
) -> Result<Vec<UserId>, ValidationErrors> {
    let items = match obj.get(field) {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(_) => {
            return Err(ValidationErrors::single(
                field,
                format!("The {field} field must be an array."),
            ))
        }
    };
    let mut errors = ValidationErrors::new();
    let mut bad = 0;
    let mut ids = Vec::with_capacity(items.len().min(max + 1));
    for (i, item) in items.iter().enumerate() {
        let id = match item {
            Value::Number(n) => n.as_i64(),
            Value::String(s) => s.trim().parse::<i64>().ok(),
            _ => None,
        };
        match id.and_then(UserId::new) {
            Some(id) => ids.push(id),
            None => {
                // The first few are enough to tell what is wrong.
                bad += 1;
                if bad > 10 {
                    break;
                }
                errors.add(
                    &format!("{field}.{i}"),
                    format!("The {field}.{i} field must be a positive integer."),
                );
            }
        }
    }
    errors.into_result()?;
    ids.sort_unstable();
    ids.dedup();
    if ids.len() > max {
        return Err(ValidationErrors::single(
            field,
            format!("The {field} field must not have more than {max} items."),
        ));
    }
    Ok(ids)
}
