//! A Shopify `orders/create` delivery, signed as Shopify signs, mapped from its nested shape
//! onto the real served deployment's parameters; the run is checked in the real Prefect.

use base64::Engine;
use serde_json::{json, Value};

use super::{field_errors, hmac256};
use crate::e2e::{count_runs, prefect_api, run_id, wait_completed};
use crate::helpers::*;

/// The served deployment's parameters, taken from an order: contact and line items from their
/// nested places, the topic from its header, the rest constants.
fn shopify_route(tag: &str) -> String {
    format!(
        r#"
[routes.shop]
deployment = "christmas-signup-handler/website"
auth = {{ type = "hmac", scheme = "shopify", secrets = [{{ env = "SHOP" }}] }}
content_types = ["application/json"]
unknown_fields = "drop"
tags = ["{tag}"]
run_name = "order-{{business_name}}"
filters = [{{ header = "X-Shopify-Topic", equals = "orders/create" }}]
[routes.shop.constants]
red_systems = 0
orange_systems = 0
yellow_systems = 0
green_systems = 4
gps_score = 50
money_score = 50
marketing_score = 50
weakest_system_1 = "GPS"
weakest_system_2 = "Money"
[routes.shop.fields]
email = {{ type = "email", path = "customer.email" }}
first_name = {{ type = "string", path = "customer.first_name" }}
business_name = {{ type = "string", header = "X-Shopify-Shop-Domain" }}
assessment_score = {{ type = "integer", path = "line_items[0].quantity", min = 0, max = 100 }}
revenue_leak_total = {{ type = "integer", path = "line_items[1].grams" }}
"#
    )
}

/// An order as Shopify's `orders/create` example shows it (trimmed, same shape).
fn order(email: &str) -> Value {
    json!({
        "id": 820982911946154508u64,
        "admin_graphql_api_id": "gid://shopify/Order/820982911946154508",
        "email": email,
        "name": "#9999",
        "currency": "USD",
        "total_price": "403.00",
        "financial_status": "paid",
        "customer": {
            "id": 115310627314723954u64,
            "email": email,
            "first_name": "John",
            "last_name": "Smith"
        },
        "line_items": [
            {"id": 866550311766439020u64, "sku": "IPOD2008PINK", "quantity": 1, "grams": 200, "price": "199.00", "title": "IPod Nano - 8GB"},
            {"id": 141249953214522974u64, "sku": "IPOD2008BLACK", "quantity": 1, "grams": 624, "price": "199.00", "title": "IPod Nano - 8GB"}
        ],
        "shipping_address": {"first_name": "Steve", "city": "Ottawa", "country_code": "CA"}
    })
}

fn shopify_headers(topic: &str, body: &[u8]) -> Vec<(String, String)> {
    vec![
        ("content-type".into(), "application/json".into()),
        ("x-shopify-topic".into(), topic.into()),
        (
            "x-shopify-shop-domain".into(),
            "jo-bakery.myshopify.com".into(),
        ),
        (
            "x-shopify-hmac-sha256".into(),
            base64::engine::general_purpose::STANDARD.encode(hmac256(b"shop-secret", body)),
        ),
        (
            "x-shopify-webhook-id".into(),
            uuid::Uuid::new_v4().to_string(),
        ),
    ]
}

#[tokio::test]
async fn a_shopify_order_runs_the_real_deployment_with_its_nested_values() {
    let api = prefect_api().await;
    let tag = format!("test:{}", uuid::Uuid::new_v4());
    let app = spawn_app_with_env(
        settings_with(api, &shopify_route(&tag)),
        &[("SHOP", "shop-secret")],
    )
    .await;
    let email = format!("order-{}@example.com", uuid::Uuid::new_v4().simple());

    let body = serde_json::to_vec(&order(&email)).unwrap();
    let response = post_signed(
        &app,
        "shop",
        &shopify_headers("orders/create", &body),
        &body,
    )
    .await;
    // Created, or queued when the shared Prefect is busy with other tests: the run either way.
    let run = wait_completed(api, &run_id(response, api, &tag, &email).await).await;
    assert_eq!(
        run["parameters"],
        json!({
            "email": email,
            "first_name": "John",
            "business_name": "jo-bakery.myshopify.com",
            "assessment_score": 1,
            "red_systems": 0,
            "orange_systems": 0,
            "yellow_systems": 0,
            "green_systems": 4,
            "gps_score": 50,
            "money_score": 50,
            "marketing_score": 50,
            "weakest_system_1": "GPS",
            "weakest_system_2": "Money",
            "revenue_leak_total": 624
        }),
        "the nested values and the header, typed"
    );
    assert_eq!(run["name"], "order-jo-bakery.myshopify.com");

    let paid = serde_json::to_vec(&order(&email)).unwrap();
    let response = post_signed(&app, "shop", &shopify_headers("orders/paid", &paid), &paid).await;
    assert_eq!(response.status().as_u16(), 202);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["status"], "ignored", "{answer}");

    let mut no_items = order(&email);
    no_items["line_items"] = json!([]);
    let no_items = serde_json::to_vec(&no_items).unwrap();
    let refused = problem(
        post_signed(
            &app,
            "shop",
            &shopify_headers("orders/create", &no_items),
            &no_items,
        )
        .await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(
        field_errors(&refused),
        vec![
            "line_items[0].quantity: is required".to_owned(),
            "line_items[1].grams: is required".to_owned(),
        ]
    );
    assert_eq!(
        count_runs(api, &tag).await,
        1,
        "only the wanted, complete order ran"
    );
}
