//! Agent runtimes. For now the scripted agent, a deterministic stand-in for
//! an LLM agent CLI that the offline demo and users' own pipelines run on.

pub mod scripted;
