//! What operators see of a built plugin, with the wasm-tools crates:
//! validation (`wasm-tools validate`) and its world as WIT
//! (`wasm-tools component wit`).

use super::PluginError;

/// Validates `wasm` as a component, with the features wasmtime accepts.
pub fn validate(wasm: &[u8]) -> Result<(), PluginError> {
    let mut v = wasmparser::Validator::new_with_features(wasmparser::WasmFeatures::all());
    v.validate_all(wasm).map(|_| ()).map_err(|e| PluginError::Invalid(e.to_string()))
}

/// The component's world as WIT text, as `wasm-tools component wit` prints it.
pub fn wit(wasm: &[u8]) -> Result<String, PluginError> {
    let decoded = wit_component::decode(wasm).map_err(|e| PluginError::Invalid(format!("{e:#}")))?;
    let mut printer = wit_component::WitPrinter::default();
    printer
        .print(decoded.resolve(), decoded.package(), &[])
        .map_err(|e| PluginError::Invalid(format!("{e:#}")))?;
    Ok(printer.output.to_string())
}

/// The component's imports, by name (`wasi:cli/stdout@0.2.6`, ...).
pub fn imports(wasm: &[u8]) -> Result<Vec<String>, PluginError> {
    top_level_names(wasm, Side::Imports)
}

/// The component's exports, by name (`memory-mcp:patterns/analyzer@0.1.0`, ...).
pub fn exports(wasm: &[u8]) -> Result<Vec<String>, PluginError> {
    top_level_names(wasm, Side::Exports)
}

#[derive(Clone, Copy)]
enum Side {
    Imports,
    Exports,
}

/// The names the outermost component imports or exports; nested modules
/// and components are skipped.
fn top_level_names(wasm: &[u8], side: Side) -> Result<Vec<String>, PluginError> {
    let invalid = |e: wasmparser::BinaryReaderError| PluginError::Invalid(e.to_string());
    let mut out = Vec::new();
    let mut depth = 0usize;
    for payload in wasmparser::Parser::new(0).parse_all(wasm) {
        match (payload.map_err(invalid)?, side) {
            (wasmparser::Payload::ModuleSection { .. } | wasmparser::Payload::ComponentSection { .. }, _) => depth += 1,
            (wasmparser::Payload::End(_), _) => depth = depth.saturating_sub(1),
            (wasmparser::Payload::ComponentImportSection(section), Side::Imports) if depth == 0 => {
                for import in section {
                    out.push(import.map_err(invalid)?.name.name.to_string());
                }
            }
            (wasmparser::Payload::ComponentExportSection(section), Side::Exports) if depth == 0 => {
                for export in section {
                    out.push(export.map_err(invalid)?.name.name.to_string());
                }
            }
            _ => {}
        }
    }
    Ok(out)
}
