//! The HTTP API's wire types in one place, one module per resource: what
//! the handlers take (request bodies, query parameters, headers) and what
//! they answer, a response that mirrors a domain type built from it by
//! `From`. The OpenAPI document and the web app's generated types are made
//! from these. The handlers live in the resource's own module
//! (`crate::files`, `crate::threads`, …); the OpenAI-compatible API keeps its
//! own wire format beside it (`crate::openai::wire`).

pub mod accounts;
pub mod admin;
pub mod audit;
pub mod budgets;
pub mod connections;
pub mod files;
pub mod health;
pub mod keys;
pub mod lifecycle;
pub mod mcp_servers;
pub mod memory;
pub mod models;
pub mod presence;
pub mod projects;
pub mod schedules;
pub mod service_accounts;
pub mod system;
pub mod threads;
pub mod tools;
pub mod webhooks;
