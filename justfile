# The everyday commands. `just --list` shows them.

# Run the service on the in-memory defaults (http://127.0.0.1:8080).
serve:
    cargo run -p chat-server -- serve

# Print an admin token for trying the API out.
token sub="1" role="admin":
    cargo run -q -p chat-server -- token --sub {{sub}} --role {{role}}

# Every test.
test:
    cargo test --workspace

# What CI runs.
ci:
    bash .ci/run

# The encryption benchmark (docs/BENCHMARKS.md).
bench:
    cargo bench -p chat-crypto --bench seal
