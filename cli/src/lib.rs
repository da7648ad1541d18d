//! The `wahooks` command line as a library: each subcommand in its own module, shared by the
//! operators' binary (`wahooks`, `src/main.rs`) and the developers' (`wahooks-dev`,
//! `src/dev.rs`: the load, cost and cold-start harnesses, which `wahooks` does not ship).

pub mod coldstart;
pub mod contact;
pub mod cost;
pub mod endpoint;
pub mod events;
pub mod front;
pub mod inspector;
pub mod load;
pub mod media;
pub mod parse;
pub mod publish;
pub mod quarantine;
pub mod recover;
pub mod replay;
pub mod send;
pub mod serve;
pub mod sign;
pub mod sim;
pub mod stack;
pub mod standin;
pub mod tail;
