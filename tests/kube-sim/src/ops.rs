//! The API verbs on the store: create, get, list, update (PUT), patch (merge, strategic-as-merge,
//! JSON patch, server-side apply), delete with finalizers and garbage collection of dependents and
//! namespace contents. HTTP-free: the server and the simulated controllers both call these.

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine;
use serde_json::{Value, json};

use crate::catalog::{self, ResourceType};
use crate::defaults::apply_defaults;
use crate::error::{ApiError, ApiResult};
use crate::managed::{self, Scope};
use crate::selector::{FieldSelector, LabelSelector};
use crate::store::{ObjKey, State};
use crate::validate;

/// Who is writing and how.
#[derive(Debug, Clone)]
pub struct WriteCtx {
    /// The field manager recorded in managedFields.
    pub manager: String,
    /// `dryRun=All`: validate and compute, store nothing.
    pub dry_run: bool,
    /// The RBAC-checked user making the request; None for the admin and the simulator itself.
    /// Writes whose authorization depends on the object (an apply that creates, escalation and
    /// bind checks on roles and bindings) are checked against it.
    pub user: Option<String>,
}

impl WriteCtx {
    pub fn internal(manager: &str) -> Self {
        WriteCtx {
            manager: manager.to_string(),
            dry_run: false,
            user: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchKind {
    Merge,
    /// Treated exactly like a JSON merge patch: lists are replaced, `$patch` directives are not understood.
    Strategic,
    Json,
    Apply {
        force: bool,
    },
}

impl PatchKind {
    pub fn from_content_type(ct: &str, force: bool) -> ApiResult<Self> {
        let base = ct.split(';').next().unwrap_or_default().trim();
        Ok(match base {
            "application/merge-patch+json" => PatchKind::Merge,
            "application/strategic-merge-patch+json" => PatchKind::Strategic,
            "application/json-patch+json" => PatchKind::Json,
            "application/apply-patch+yaml" | "application/apply-patch+json" => {
                PatchKind::Apply { force }
            }
            other => return Err(ApiError::unsupported_media(other)),
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Propagation {
    Background,
    Foreground,
    Orphan,
}

#[derive(Debug, Default)]
pub struct ListQuery {
    pub labels: LabelSelector,
    pub fields: FieldSelector,
    pub limit: Option<usize>,
    pub cont: Option<String>,
}

pub fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

pub fn new_uid() -> String {
    let b: [u8; 16] = rand::random();
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
        u16::from_be_bytes([b[4], b[5]]),
        u16::from_be_bytes([b[6], b[7]]) & 0x0fff,
        (u16::from_be_bytes([b[8], b[9]]) & 0x3fff) | 0x8000,
        u64::from_be_bytes([0, 0, b[10], b[11], b[12], b[13], b[14], b[15]])
    )
}

/// Five characters like the apiserver's `generateName` suffixes.
pub fn rand_suffix(n: usize) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..n)
        .map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char)
        .collect()
}

fn is_claim(rt: &ResourceType) -> bool {
    rt.group.is_empty() && rt.kind == "PersistentVolumeClaim"
}

fn name_of(v: &Value) -> &str {
    v["metadata"]["name"].as_str().unwrap_or_default()
}

fn uid_of(v: &Value) -> &str {
    v["metadata"]["uid"].as_str().unwrap_or_default()
}

/// `persistentvolumeclaims.` / `deployments.apps`, as the namespace controller names kinds.
fn qualified_kind(k: &ObjKey) -> String {
    format!("{}.{}", k.plural, k.group)
}

fn namespace_key(ns: &str) -> ObjKey {
    ObjKey {
        group: String::new(),
        plural: "namespaces".into(),
        namespace: String::new(),
        name: ns.into(),
    }
}

/// Parse a request body that is YAML or JSON (apply patches may be either).
pub fn parse_body(body: &[u8]) -> ApiResult<Value> {
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        return Ok(v);
    }
    let text = std::str::from_utf8(body)
        .map_err(|_| ApiError::bad_request("the request body is not UTF-8"))?;
    serde_saphyr::from_str::<Value>(text)
        .map_err(|e| ApiError::bad_request(format!("error decoding YAML/JSON request body: {e}")))
}

/// RFC 6902, one operation at a time, with the apiserver's leniency that kube-runtime's finalizer
/// helper relies on: `test` for `null` passes when the path does not exist.
fn apply_json_patch(doc: &mut Value, patch: json_patch::Patch) -> ApiResult<()> {
    for op in patch.0 {
        if let json_patch::PatchOperation::Test(t) = &op
            && t.value.is_null()
            && doc.pointer(t.path.as_str()).is_none()
        {
            continue;
        }
        json_patch::patch(doc, std::slice::from_ref(&op)).map_err(|e| {
            ApiError::new(
                422,
                "Invalid",
                format!("the JSON patch could not be applied: {e}"),
            )
        })?;
    }
    Ok(())
}

impl State {
    fn with_api_version(rt: &ResourceType, mut v: Value) -> Value {
        v["apiVersion"] = json!(rt.api_version());
        v["kind"] = json!(rt.kind);
        v
    }

    /// An object as a read returns it: custom resources get their CRD's current defaults, so an
    /// object stored before a default existed reads with it (the apiserver defaults on read).
    fn as_read(rt: &ResourceType, v: Value) -> Value {
        let mut v = Self::with_api_version(rt, v);
        if let Some(schema) = rt.crd.as_ref().and_then(|c| c.structural.as_ref()) {
            crate::defaults::structural_defaults(schema, &mut v);
        }
        v
    }

    /// Look up the object or 404.
    pub fn op_get(&self, rt: &ResourceType, ns: &str, name: &str) -> ApiResult<Value> {
        self.get(&ObjKey::new(rt, ns, name))
            .cloned()
            .map(|v| Self::as_read(rt, v))
            .ok_or_else(|| ApiError::not_found(&rt.plural, &rt.group, name))
    }

    pub fn op_list(&self, rt: &ResourceType, ns: Option<&str>, q: &ListQuery) -> ApiResult<Value> {
        let after: Option<(String, String)> = match &q.cont {
            Some(tok) if !tok.is_empty() => {
                let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(tok)
                    .ok()
                    .and_then(|b| serde_json::from_slice::<(String, String)>(&b).ok())
                    .ok_or_else(|| ApiError::bad_request(format!("continue token \"{tok}\" is not one this server issued; restart the list without `continue`")))?;
                Some(raw)
            }
            _ => None,
        };
        let ns = if rt.namespaced { ns } else { None };
        let mut items = Vec::new();
        let mut next = None;
        let mut remaining = 0usize;
        for (k, v) in self.scan(&rt.group, &rt.plural, ns) {
            if after.as_ref().is_some_and(|(an, am)| {
                (k.namespace.as_str(), k.name.as_str()) <= (an.as_str(), am.as_str())
            }) {
                continue;
            }
            if !q.labels.matches(v) || !q.fields.matches(v) {
                continue;
            }
            if q.limit.is_some_and(|l| l > 0 && items.len() >= l) {
                remaining += 1;
                if next.is_none() {
                    let last: &Value = items.last().expect("limit > 0");
                    let key = (
                        last["metadata"]["namespace"]
                            .as_str()
                            .unwrap_or_default()
                            .to_string(),
                        name_of(last).to_string(),
                    );
                    next = Some(
                        base64::engine::general_purpose::URL_SAFE_NO_PAD
                            .encode(serde_json::to_vec(&key).expect("tuple")),
                    );
                }
                continue;
            }
            items.push(Self::as_read(rt, v.clone()));
        }
        let mut meta = json!({"resourceVersion": self.rv.to_string()});
        if let Some(n) = next {
            meta["continue"] = json!(n);
            meta["remainingItemCount"] = json!(remaining);
        }
        Ok(
            json!({"apiVersion": rt.api_version(), "kind": format!("{}List", rt.kind), "metadata": meta, "items": items}),
        )
    }

    fn check_namespace(&self, rt: &ResourceType, ns: &str, name: &str) -> ApiResult<()> {
        if !rt.namespaced {
            return Ok(());
        }
        match self.get(&namespace_key(ns)) {
            None => Err(ApiError::not_found("namespaces", "", ns)),
            Some(n) if !n["metadata"]["deletionTimestamp"].is_null() => {
                Err(ApiError::forbidden(format!(
                    "{} \"{}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                    crate::error::qualified(&rt.plural, &rt.group),
                    name
                )))
            }
            Some(_) => Ok(()),
        }
    }

    /// Kind-specific validation shared by create and update; returns 422 causes.
    fn validate_object(
        &self,
        rt: &ResourceType,
        obj: &mut Value,
        old: Option<&Value>,
    ) -> ApiResult<()> {
        let mut causes = validate::workload(rt, obj);
        if let Some(old) = old {
            causes.extend(validate::immutable(rt, old, obj));
        }
        if let Some(info) = &rt.crd
            && let Some(schema) = &info.validator
        {
            schema.prune(obj);
            if let Some(structural) = &info.structural {
                crate::defaults::structural_defaults(structural, obj);
            }
            causes.extend(schema.validate(obj));
        }
        if rt.group == "apiextensions.k8s.io"
            && let Err(c) = catalog::types_from_crd(obj)
        {
            causes.extend(c);
        }
        if causes.is_empty() {
            Ok(())
        } else {
            Err(ApiError::invalid(&rt.kind, &rt.group, name_of(obj), causes))
        }
    }

    /// POST: create `body` in `ns`. `managed_done` when server-side apply already set managedFields.
    pub fn op_create(
        &mut self,
        rt: &Arc<ResourceType>,
        ns: &str,
        mut body: Value,
        ctx: &WriteCtx,
        managed_done: bool,
    ) -> ApiResult<Value> {
        if !body.is_object() {
            return Err(ApiError::bad_request(format!(
                "the body of a {} create must be a JSON object",
                rt.kind
            )));
        }
        if let Some(k) = body["kind"].as_str()
            && k != rt.kind
        {
            return Err(ApiError::bad_request(format!(
                "the body's kind \"{k}\" does not match the resource {} (kind {})",
                crate::error::qualified(&rt.plural, &rt.group),
                rt.kind
            )));
        }
        body = Self::with_api_version(rt, body);
        if !body["metadata"].is_object() {
            body["metadata"] = json!({});
        }
        if rt.namespaced {
            match body["metadata"]["namespace"].as_str() {
                Some(n) if !n.is_empty() && n != ns => {
                    return Err(ApiError::bad_request(format!(
                        "the namespace of the provided object ({n}) does not match the namespace sent on the request ({ns})"
                    )));
                }
                _ => body["metadata"]["namespace"] = json!(ns),
            }
        } else if let Some(m) = body["metadata"].as_object_mut() {
            m.remove("namespace");
        }
        let mut name = name_of(&body).to_string();
        if name.is_empty() {
            match body["metadata"]["generateName"].as_str() {
                Some(prefix) if !prefix.is_empty() => {
                    name = format!("{prefix}{}", rand_suffix(5));
                    body["metadata"]["name"] = json!(name);
                }
                _ => {
                    return Err(ApiError::invalid(
                        &rt.kind,
                        &rt.group,
                        "",
                        vec![(
                            "metadata.name".into(),
                            "Required value: name or generateName is required".into(),
                        )],
                    ));
                }
            }
        }
        let causes = validate::name(rt, &name);
        if !causes.is_empty() {
            return Err(ApiError::invalid(&rt.kind, &rt.group, &name, causes));
        }
        self.check_namespace(rt, ns, &name)?;
        if let Some(info) = &rt.crd {
            self.refuse_create_while_terminating(&info.crd_name)?;
        }
        let key = ObjKey::new(rt, ns, &name);
        if self.objects.contains_key(&key) {
            return Err(ApiError::already_exists(&rt.plural, &rt.group, &name));
        }
        {
            let md = body["metadata"]
                .as_object_mut()
                .expect("metadata is an object");
            for k in [
                "resourceVersion",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "selfLink",
            ] {
                md.remove(k);
            }
            md.insert("uid".into(), json!(new_uid()));
            md.insert("creationTimestamp".into(), json!(now()));
            md.remove("generation");
            if crate::generation::tracked(rt) {
                md.insert("generation".into(), json!(1));
            }
        }
        if rt.status
            && let Some(m) = body.as_object_mut()
        {
            m.remove("status");
        }
        apply_defaults(rt, &mut body, None, &mut self.alloc);
        if is_claim(rt) {
            self.admit_new_claim(&mut body);
        }
        if !managed_done {
            managed::record_update(
                None,
                &mut body,
                crate::shape::for_type(rt),
                &ctx.manager,
                Scope::Main {
                    status_separate: rt.status,
                },
                &now(),
            );
        }
        self.validate_object(rt, &mut body, None)?;
        if let Some(user) = &ctx.user {
            self.confirm_no_escalation(user, rt, &body)?;
        }
        if ctx.dry_run {
            self.alloc.release(&body);
            return Ok(body);
        }
        let stored = self.commit(key, body, None);
        self.after_write(rt, &stored);
        Ok(stored)
    }

    /// Bookkeeping after a stored write: CRDs (re)declare their kinds.
    fn after_write(&mut self, rt: &ResourceType, stored: &Value) {
        if rt.group == "apiextensions.k8s.io" && rt.kind == "CustomResourceDefinition" {
            let types = catalog::types_from_crd(stored).unwrap_or_default();
            self.catalog.set_crd_types(name_of(stored), types);
        }
    }

    /// The common tail of PUT, patch and apply: keep identity, honour the status split, default,
    /// record managed fields, validate, bump generation, and store unless nothing changed.
    pub fn finish_write(
        &mut self,
        rt: &Arc<ResourceType>,
        old: &Value,
        new: Value,
        scope: Scope,
        record_as: Option<&str>,
        ctx: &WriteCtx,
    ) -> ApiResult<Value> {
        let name = name_of(old).to_string();
        if let Some(rv) = new["metadata"]["resourceVersion"].as_str()
            && !rv.is_empty()
            && Some(rv) != old["metadata"]["resourceVersion"].as_str()
        {
            return Err(ApiError::conflict(&rt.plural, &rt.group, &name));
        }
        if !new["metadata"]["name"].is_null() && name_of(&new) != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({}) does not match the name on the URL ({name})",
                name_of(&new)
            )));
        }
        let mut obj = match scope {
            Scope::Status => {
                let mut o = old.clone();
                match new.get("status") {
                    Some(s) if !s.is_null() => o["status"] = s.clone(),
                    _ => {
                        o.as_object_mut()
                            .expect("stored objects are maps")
                            .remove("status");
                    }
                }
                o["metadata"]["managedFields"] = new["metadata"]["managedFields"].clone();
                o
            }
            Scope::Main { .. } => {
                let mut o = Self::with_api_version(rt, new);
                if !o["metadata"].is_object() {
                    o["metadata"] = json!({});
                }
                for k in [
                    "name",
                    "namespace",
                    "uid",
                    "creationTimestamp",
                    "generation",
                    "deletionTimestamp",
                    "deletionGracePeriodSeconds",
                ] {
                    match old["metadata"].get(k) {
                        Some(v) => o["metadata"][k] = v.clone(),
                        None => {
                            o["metadata"]
                                .as_object_mut()
                                .expect("metadata map")
                                .remove(k);
                        }
                    }
                }
                if rt.status {
                    match old.get("status") {
                        Some(s) => o["status"] = s.clone(),
                        None => {
                            o.as_object_mut().expect("map").remove("status");
                        }
                    }
                }
                o
            }
        };
        obj["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"].clone();
        if obj["metadata"]["managedFields"].is_null()
            && let Some(m) = obj["metadata"].as_object_mut()
        {
            m.remove("managedFields");
        }
        apply_defaults(rt, &mut obj, Some(old), &mut self.alloc);
        if is_claim(rt) && scope != Scope::Status {
            self.check_claim_update(old, &obj)?;
        }
        if let Some(manager) = record_as {
            let shape = crate::shape::for_type(rt);
            managed::record_update(Some(old), &mut obj, shape, manager, scope, &now());
        }
        self.validate_object(rt, &mut obj, Some(old))?;
        if let Some(user) = ctx.user.as_ref().filter(|_| scope != Scope::Status) {
            self.confirm_no_escalation(user, rt, &obj)?;
        }
        if let Some(g) = crate::generation::next(rt, old, &obj) {
            obj["metadata"]["generation"] = json!(g);
        }
        if &obj == old || ctx.dry_run {
            return Ok(obj);
        }
        let key = ObjKey::of(rt, old);
        let finalized = !obj["metadata"]["deletionTimestamp"].is_null()
            && obj["metadata"]["finalizers"]
                .as_array()
                .is_none_or(|f| f.is_empty());
        if finalized {
            self.objects.insert(key.clone(), obj);
            return Ok(self.delete_now(&key).unwrap_or_default());
        }
        let stored = self.commit(key, obj, Some(old.clone()));
        self.after_write(rt, &stored);
        Ok(stored)
    }

    /// PUT on the object or its `/status`.
    pub fn op_update(
        &mut self,
        rt: &Arc<ResourceType>,
        ns: &str,
        name: &str,
        scope: Scope,
        body: Value,
        ctx: &WriteCtx,
    ) -> ApiResult<Value> {
        let old = self
            .get(&ObjKey::new(rt, ns, name))
            .cloned()
            .ok_or_else(|| ApiError::not_found(&rt.plural, &rt.group, name))?;
        let manager = ctx.manager.clone();
        self.finish_write(rt, &old, body, scope, Some(&manager), ctx)
    }

    /// PATCH; returns the object and whether it was created (apply on a missing object).
    // The apiserver's PATCH really has this many inputs; bundling them would only rename them.
    #[allow(clippy::too_many_arguments)]
    pub fn op_patch(
        &mut self,
        rt: &Arc<ResourceType>,
        ns: &str,
        name: &str,
        scope: Scope,
        kind: PatchKind,
        body: &[u8],
        ctx: &WriteCtx,
    ) -> ApiResult<(Value, bool)> {
        let existing = self.get(&ObjKey::new(rt, ns, name)).cloned();
        match kind {
            PatchKind::Apply { force } => {
                let applied = parse_body(body)?;
                if !applied.is_object() {
                    return Err(ApiError::bad_request(
                        "an apply patch must be an object with apiVersion, kind and metadata.name",
                    ));
                }
                if applied["apiVersion"].as_str() != Some(&rt.api_version())
                    || applied["kind"].as_str() != Some(&rt.kind)
                {
                    return Err(ApiError::bad_request(format!(
                        "the apply patch must have apiVersion \"{}\" and kind \"{}\" for {} (got apiVersion {} kind {})",
                        rt.api_version(),
                        rt.kind,
                        crate::error::qualified(&rt.plural, &rt.group),
                        applied["apiVersion"],
                        applied["kind"]
                    )));
                }
                if let Some(n) = applied["metadata"]["name"].as_str()
                    && n != name
                {
                    return Err(ApiError::bad_request(format!(
                        "the name of the object ({n}) does not match the name on the URL ({name})"
                    )));
                }
                let now = now();
                match existing {
                    None if scope == Scope::Status => {
                        Err(ApiError::not_found(&rt.plural, &rt.group, name))
                    }
                    None => {
                        // An apply that creates is authorized as a create too (the apiserver's
                        // patch handler checks `create` before creating).
                        if let Some(user) = &ctx.user {
                            self.authorize(user, &crate::rbac::Attributes::create(rt, ns, name))?;
                        }
                        let mut skeleton = json!({"apiVersion": rt.api_version(), "kind": rt.kind, "metadata": {"name": name}});
                        if rt.namespaced {
                            skeleton["metadata"]["namespace"] = json!(ns);
                        }
                        let mut obj = managed::apply(
                            &skeleton,
                            &applied,
                            crate::shape::for_type(rt),
                            &ctx.manager,
                            force,
                            scope,
                            &now,
                        )
                        .map_err(|c| {
                            ApiError::new(409, "Conflict", managed::conflict_message(&c))
                        })?;
                        for k in ["generateName"] {
                            if let Some(v) = applied["metadata"].get(k) {
                                obj["metadata"][k] = v.clone();
                            }
                        }
                        Ok((self.op_create(rt, ns, obj, ctx, true)?, true))
                    }
                    Some(old) => {
                        if let Some(rv) = applied["metadata"]["resourceVersion"]
                            .as_str()
                            .filter(|rv| !rv.is_empty())
                            && Some(rv) != old["metadata"]["resourceVersion"].as_str()
                        {
                            return Err(ApiError::conflict(&rt.plural, &rt.group, name));
                        }
                        let merged = managed::apply(&old, &applied, crate::shape::for_type(rt), &ctx.manager, force, scope, &now).map_err(|c| {
                            let mut e = ApiError::new(409, "Conflict", managed::conflict_message(&c));
                            let causes: Vec<Value> = c
                                .iter()
                                .map(|c| json!({"reason": "FieldManagerConflict", "message": format!("conflict with \"{}\" using {}", c.manager, c.api_version), "field": managed::display(&c.path)}))
                                .collect();
                            e.details = Some(json!({"name": name, "group": rt.group, "kind": rt.plural, "causes": causes}));
                            e
                        })?;
                        Ok((
                            self.finish_write(rt, &old, merged, scope, None, ctx)?,
                            false,
                        ))
                    }
                }
            }
            PatchKind::Merge | PatchKind::Strategic | PatchKind::Json => {
                let old =
                    existing.ok_or_else(|| ApiError::not_found(&rt.plural, &rt.group, name))?;
                let mut doc = old.clone();
                if kind == PatchKind::Json {
                    let patch: json_patch::Patch = serde_json::from_slice(body).map_err(|e| {
                        ApiError::bad_request(format!(
                            "the JSON patch body is not a list of operations: {e}"
                        ))
                    })?;
                    apply_json_patch(&mut doc, patch)?;
                } else {
                    let patch: Value = serde_json::from_slice(body).map_err(|e| {
                        ApiError::bad_request(format!("the merge patch body is not JSON: {e}"))
                    })?;
                    // The patch's resourceVersion is a precondition, not a value to write.
                    if let Some(rv) = patch["metadata"]["resourceVersion"]
                        .as_str()
                        .filter(|rv| !rv.is_empty())
                        && Some(rv) != old["metadata"]["resourceVersion"].as_str()
                    {
                        return Err(ApiError::conflict(&rt.plural, &rt.group, name));
                    }
                    json_patch::merge(&mut doc, &patch);
                }
                doc["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"].clone();
                let manager = ctx.manager.clone();
                Ok((
                    self.finish_write(rt, &old, doc, scope, Some(&manager), ctx)?,
                    false,
                ))
            }
        }
    }

    /// DELETE: mark objects with finalizers, remove the rest (and their dependents).
    pub fn op_delete(
        &mut self,
        rt: &Arc<ResourceType>,
        ns: &str,
        name: &str,
        propagation: Propagation,
        precondition: &Value,
        ctx: &WriteCtx,
    ) -> ApiResult<Value> {
        let key = ObjKey::new(rt, ns, name);
        let obj = self
            .get(&key)
            .cloned()
            .ok_or_else(|| ApiError::not_found(&rt.plural, &rt.group, name))?;
        if let Some(uid) = precondition["uid"].as_str()
            && uid != uid_of(&obj)
        {
            return Err(ApiError::new(
                409,
                "Conflict",
                format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    uid_of(&obj)
                ),
            ));
        }
        if let Some(rv) = precondition["resourceVersion"].as_str()
            && Some(rv) != obj["metadata"]["resourceVersion"].as_str()
        {
            return Err(ApiError::conflict(&rt.plural, &rt.group, name));
        }
        if ctx.dry_run {
            return Ok(Self::with_api_version(rt, obj));
        }
        if propagation == Propagation::Orphan {
            self.orphan_dependents(uid_of(&obj));
        }
        Ok(self
            .delete_object(&key)
            .map(|v| Self::with_api_version(rt, v))
            .unwrap_or(obj))
    }

    /// Delete everything a list with these selectors returns; returns the list of what was deleted.
    pub fn op_delete_collection(
        &mut self,
        rt: &Arc<ResourceType>,
        ns: Option<&str>,
        q: &ListQuery,
        ctx: &WriteCtx,
    ) -> ApiResult<Value> {
        let mut list = self.op_list(rt, ns, q)?;
        if !ctx.dry_run {
            for item in list["items"].as_array().cloned().unwrap_or_default() {
                self.delete_object(&ObjKey::of(rt, &item));
            }
        }
        list["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        Ok(list)
    }

    fn orphan_dependents(&mut self, uid: &str) {
        let deps: Vec<ObjKey> = self
            .objects
            .iter()
            .filter(|(_, v)| {
                v["metadata"]["ownerReferences"]
                    .as_array()
                    .is_some_and(|r| r.iter().any(|o| o["uid"] == uid))
            })
            .map(|(k, _)| k.clone())
            .collect();
        for k in deps {
            if let Some(old) = self.objects.get(&k).cloned() {
                let mut new = old.clone();
                if let Some(refs) = new["metadata"]["ownerReferences"].as_array_mut() {
                    refs.retain(|o| o["uid"] != uid);
                }
                self.commit(k, new, Some(old));
            }
        }
    }

    /// Delete respecting finalizers: mark (deletionTimestamp) or remove. Returns the object as left.
    pub fn delete_object(&mut self, key: &ObjKey) -> Option<Value> {
        if crate::crd_cleanup::is_crd(key) {
            return self.mark_crd_deleted(key);
        }
        let obj = self.objects.get(key)?.clone();
        let is_ns = key.group.is_empty() && key.plural == "namespaces";
        let has_finalizers = obj["metadata"]["finalizers"]
            .as_array()
            .is_some_and(|f| !f.is_empty());
        if !has_finalizers && !is_ns {
            return self.delete_now(key);
        }
        let mut marked = obj.clone();
        if marked["metadata"]["deletionTimestamp"].is_null() {
            marked["metadata"]["deletionTimestamp"] = json!(now());
            marked["metadata"]["deletionGracePeriodSeconds"] = json!(0);
            if is_ns {
                marked["status"]["phase"] = json!("Terminating");
            }
            marked = self.commit(key.clone(), marked, Some(obj));
        }
        // A namespace's contents are deleted later, by the namespace controller
        // (`purge_namespace`), as on a real cluster: it stays Terminating meanwhile.
        Some(marked)
    }

    /// The namespace controller's pass over a terminating namespace: delete what is in it (objects
    /// with finalizers are only marked), then remove the namespace if it is empty, else report
    /// what remains in its conditions as the real controller does.
    pub fn purge_namespace(&mut self, ns: &str) {
        let key = namespace_key(ns);
        if self
            .get(&key)
            .is_none_or(|n| n["metadata"]["deletionTimestamp"].is_null())
        {
            return;
        }
        let contents: Vec<ObjKey> = self
            .objects
            .keys()
            .filter(|k| k.namespace == ns)
            .cloned()
            .collect();
        for k in contents {
            self.delete_object(&k);
        }
        let remaining: Vec<(ObjKey, Value)> = self
            .objects
            .iter()
            .filter(|(k, _)| k.namespace == ns)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let Some(old) = self.get(&key).cloned() else {
            return; // emptied by the last deletion
        };
        let has_finalizers = old["metadata"]["finalizers"]
            .as_array()
            .is_some_and(|f| !f.is_empty());
        if remaining.is_empty() {
            if !has_finalizers {
                self.delete_now(&key);
            }
            return;
        }
        let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
        let mut finalizers: BTreeMap<String, usize> = BTreeMap::new();
        for (k, v) in &remaining {
            *kinds.entry(qualified_kind(k)).or_default() += 1;
            for f in v["metadata"]["finalizers"].as_array().into_iter().flatten() {
                *finalizers
                    .entry(f.as_str().unwrap_or_default().to_string())
                    .or_default() += 1;
            }
        }
        let list = |m: &BTreeMap<String, usize>| {
            m.iter()
                .map(|(k, n)| format!("{k} in {n} resource instances"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let t = now();
        let cond = |type_: &str, status: bool, reason: &str, message: String| json!({"type": type_, "status": if status { "True" } else { "False" }, "reason": reason, "message": message, "lastTransitionTime": t});
        let kinds_text = kinds
            .iter()
            .map(|(k, n)| format!("{k} has {n} resource instances"))
            .collect::<Vec<_>>()
            .join(", ");
        let mut new = old.clone();
        new["status"]["conditions"] = json!([
            cond(
                "NamespaceDeletionDiscoveryFailure",
                false,
                "ResourcesDiscovered",
                "All resources successfully discovered".into()
            ),
            cond(
                "NamespaceDeletionGroupVersionParsingFailure",
                false,
                "ParsedGroupVersions",
                "All legacy kube types successfully parsed".into()
            ),
            cond(
                "NamespaceDeletionContentFailure",
                false,
                "ContentDeleted",
                "All content successfully deleted, may be waiting on finalization".into()
            ),
            cond(
                "NamespaceContentRemaining",
                true,
                "SomeResourcesRemain",
                format!("Some resources are remaining: {kinds_text}")
            ),
            cond(
                "NamespaceFinalizersRemaining",
                !finalizers.is_empty(),
                if finalizers.is_empty() {
                    "ContentHasNoFinalizers"
                } else {
                    "SomeFinalizersRemain"
                },
                if finalizers.is_empty() {
                    "All content-preserving finalizers finished".into()
                } else {
                    format!(
                        "Some content in the namespace has finalizers remaining: {}",
                        list(&finalizers)
                    )
                }
            ),
        ]);
        if new != old {
            self.commit(key, new, Some(old));
        }
    }

    /// Remove now, then collect: dependents (by owner uid), a CRD's custom resources, and a
    /// terminating namespace that this removal emptied.
    pub fn delete_now(&mut self, key: &ObjKey) -> Option<Value> {
        let obj = self.remove(key)?;
        let uid = uid_of(&obj).to_string();
        let deps: Vec<ObjKey> = self
            .objects
            .iter()
            .filter(|(_, v)| {
                v["metadata"]["ownerReferences"]
                    .as_array()
                    .is_some_and(|r| r.iter().any(|o| o["uid"] == uid.as_str()))
            })
            .map(|(k, _)| k.clone())
            .collect();
        for k in deps {
            self.delete_object(&k);
        }
        if key.group == "apiextensions.k8s.io" && key.plural == "customresourcedefinitions" {
            let group = obj["spec"]["group"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let plural = obj["spec"]["names"]["plural"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let crs: Vec<ObjKey> = self
                .scan(&group, &plural, None)
                .map(|(k, _)| k.clone())
                .collect();
            for k in crs {
                self.delete_now(&k);
            }
            self.catalog.set_crd_types(&key.name, vec![]);
        } else if !key.group.is_empty() {
            self.custom_resource_removed(key);
        }
        if !key.namespace.is_empty() {
            let ns_key = namespace_key(&key.namespace);
            let terminating = self
                .objects
                .get(&ns_key)
                .is_some_and(|n| !n["metadata"]["deletionTimestamp"].is_null());
            if terminating && !self.objects.keys().any(|k| k.namespace == key.namespace) {
                self.delete_now(&ns_key);
            }
        }
        Some(obj)
    }
}
