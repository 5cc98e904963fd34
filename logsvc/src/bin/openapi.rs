//! Prints the log service's OpenAPI document (`make openapi` writes it to logsvc/openapi.json).

use std::io::Write;

fn main() -> std::io::Result<()> {
    std::io::stdout().write_all(&stressmix_logsvc::http::openapi::render())
}
