//! Integration tests: the real application on port 0, with the real config file.
//! Fault cases point it at wiremock; `e2e` points it at a real Prefect server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod abuse;
mod admin_api;
mod api_v1;
mod auth;
mod burst;
mod check_config;
mod durability;
mod e2e;
mod events;
mod fakes;
mod faults;
mod flood;
mod gateway;
mod health;
mod helpers;
mod logs;
mod manage;
mod metrics;
mod nginx;
mod nginx_support;
mod openapi;
mod ops_page;
mod outbox;
mod prefect_tls;
mod real_prefect;
mod rejections;
mod reload;
mod replicas;
mod resolution;
mod restart;
mod run_history;
mod sign;
