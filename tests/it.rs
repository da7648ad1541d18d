//! The workspace's integration tests in one binary, each file a module (`cargo test --test it
//! <module>::` runs one): it links wahooks and the AWS SDK once, not once per file.
//!
//! Against moto: the receivers (`receive_moto`), the fanout and the timers (`fanout_moto`), the
//! template deployed (`infra_moto`), the workers in three languages (`workers_moto`), hostile
//! requests (`hostile`). Without it (what `make check` runs): the fixtures (`parse_fixtures`), the
//! schema (`schema`), the write units (`write_units`), the documents (`docs`).

mod common;

mod docs;
mod fanout_moto;
mod hostile;
mod infra_moto;
mod parse_fixtures;
mod receive_moto;
mod schema;
mod workers_moto;
mod write_units;
