//! Host bindings generated from `wit/plugin.wit` (kept private to `plugin`).

wasmtime::component::bindgen!({
    path: "../wit",
    world: "backend",
    // Host imports are async (they do I/O) and may trap; never traced, since
    // their arguments and results can carry secret values.
    imports: { default: async | trappable },
    exports: { default: async },
});
