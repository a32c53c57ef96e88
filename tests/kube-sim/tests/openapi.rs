//! `/openapi/v2` and `/openapi/v3`: the documents real clients (kubectl apply's validation,
//! kubectl explain) read, from the same schemas server-side apply uses.

mod common;

use serde_json::{Value, json};

async fn get(sim: &kube_sim::Simulator, path: &str) -> (u16, String, Value) {
    let resp = reqwest::Client::new()
        .get(format!("{}{path}", sim.url()))
        .bearer_auth("admin-token")
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    let code = resp.status().as_u16();
    let ctype = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = resp.json().await.unwrap_or(Value::Null);
    (code, ctype, body)
}

#[tokio::test]
async fn v3_discovery_and_group_version_documents() {
    let sim = common::start().await;
    let (code, ctype, disc) = get(&sim, "/openapi/v3").await;
    assert_eq!((code, ctype.as_str()), (200, "application/json"));
    let apps = disc["paths"]["apis/apps/v1"]["serverRelativeURL"]
        .as_str()
        .unwrap();
    assert!(apps.starts_with("/openapi/v3/apis/apps/v1?hash="), "{apps}");
    assert!(disc["paths"]["api/v1"].is_object(), "{disc}");

    let (code, ctype, doc) = get(&sim, apps).await;
    assert_eq!((code, ctype.as_str()), (200, "application/json"));
    assert_eq!(doc["openapi"], "3.0.0");
    let schemas = &doc["components"]["schemas"];
    let deploy = &schemas["io.k8s.api.apps.v1.Deployment"];
    assert_eq!(
        deploy["x-kubernetes-group-version-kind"],
        json!([{"group": "apps", "kind": "Deployment", "version": "v1"}])
    );
    assert_eq!(
        deploy["properties"]["spec"]["$ref"],
        "#/components/schemas/io.k8s.api.apps.v1.DeploymentSpec"
    );
    // Every reference resolves inside the document, and the list types SSA uses are there.
    let text = doc.to_string();
    for r in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
        let name = &r[..r.find('"').unwrap()];
        assert!(schemas.get(name).is_some(), "dangling $ref {name}");
    }
    let containers = &schemas["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"];
    assert_eq!(containers["x-kubernetes-list-type"], "map");
    assert_eq!(containers["x-kubernetes-list-map-keys"], json!(["name"]));
    assert!(
        doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["get"].is_object()
    );
    // Not served: 404.
    assert_eq!(
        get(&sim, "/openapi/v3/apis/nothing.example.com/v1").await.0,
        404
    );
}

#[tokio::test]
async fn v2_has_the_definitions_with_list_types() {
    let sim = common::start().await;
    let (code, ctype, doc) = get(&sim, "/openapi/v2").await;
    assert_eq!((code, ctype.as_str()), (200, "application/json"));
    assert_eq!(doc["swagger"], "2.0");
    assert_eq!(doc["info"]["version"], "v1.33.5");
    let env = &doc["definitions"]["io.k8s.api.core.v1.Container"]["properties"]["env"];
    assert_eq!(env["x-kubernetes-list-type"], "map");
    assert_eq!(
        env["items"]["$ref"],
        "#/definitions/io.k8s.api.core.v1.EnvVar"
    );
    // A client that only takes protobuf is told so, as a JSON-only server would.
    let resp = reqwest::Client::new()
        .get(format!("{}/openapi/v2", sim.url()))
        .bearer_auth("admin-token")
        .header(
            "accept",
            "application/com.github.proto-openapi.spec.v2@v1.0+protobuf",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 406);
}

#[tokio::test]
async fn a_crd_appears_once_established() {
    let sim = kube_sim::Simulator::start(kube_sim::Config {
        crd_established_delay: std::time::Duration::from_millis(400),
        ..common::fast_config()
    })
    .await
    .unwrap();
    sim.put(json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "pools.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
                 "names": {"plural": "pools", "singular": "pool", "kind": "Pool"},
                 "versions": [{"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {
                     "type": "object", "properties": {"spec": {"type": "object", "properties": {
                         "workers": {"type": "array", "x-kubernetes-list-type": "map",
                                     "x-kubernetes-list-map-keys": ["name"],
                                     "items": {"type": "object", "properties": {"name": {"type": "string"}}}}}}}}}}]}}))
    .unwrap();
    let (_, _, disc) = get(&sim, "/openapi/v3").await;
    assert!(
        disc["paths"].get("apis/example.com/v1").is_none(),
        "not yet Established: {disc}"
    );
    let doc = common::eventually("the CRD's document", || async {
        let (code, _, doc) = get(&sim, "/openapi/v3/apis/example.com/v1").await;
        (code == 200).then_some(doc)
    })
    .await;
    let pool = &doc["components"]["schemas"]["com.example.v1.Pool"];
    assert_eq!(
        pool["x-kubernetes-group-version-kind"],
        json!([{"group": "example.com", "kind": "Pool", "version": "v1"}])
    );
    assert_eq!(
        pool["properties"]["metadata"]["$ref"],
        "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
    );
    assert_eq!(
        pool["properties"]["spec"]["properties"]["workers"]["x-kubernetes-list-type"],
        "map"
    );
    assert!(
        doc["components"]["schemas"]["io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"].is_object()
    );
    let (_, _, v2) = get(&sim, "/openapi/v2").await;
    assert!(v2["definitions"]["com.example.v1.Pool"].is_object());
}

/// `fieldValidation=Strict`, which the documents advertise on writes (so kubectl's
/// `--validate=strict` leaves validation to the server): an undeclared field is a 400 naming it.
#[tokio::test]
async fn strict_field_validation_names_the_unknown_field() {
    let sim = common::start().await;
    let (_, _, doc) = get(&sim, "/openapi/v3/api/v1").await;
    let patch = &doc["paths"]["/api/v1/namespaces/{namespace}/configmaps/{name}"]["patch"];
    assert_eq!(patch["parameters"][0]["name"], "fieldValidation", "{patch}");

    let post = |query: &'static str, body: Value| {
        let url = format!("{}/api/v1/namespaces/default/configmaps{query}", sim.url());
        async move {
            let resp = reqwest::Client::new()
                .post(url)
                .bearer_auth("admin-token")
                .json(&body)
                .send()
                .await
                .unwrap();
            let code = resp.status().as_u16();
            (code, resp.json::<Value>().await.unwrap())
        }
    };
    let bad = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"}, "dta": {}});
    let (code, status) = post("?fieldValidation=Strict", bad.clone()).await;
    assert_eq!(code, 400, "{status}");
    assert_eq!(
        status["message"],
        "ConfigMap in version \"v1\" cannot be handled as a ConfigMap: strict decoding error: unknown field \"dta\""
    );
    let mut good = bad;
    good.as_object_mut().unwrap().remove("dta");
    assert_eq!(post("?fieldValidation=Strict", good).await.0, 201);
}
