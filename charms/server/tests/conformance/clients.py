"""Real inference clients from PyPI against a running wharf-server (run by tests/conformance.rs).

    clients.py HTTP_ADDR GRPC_ADDR MODEL IMAGES EXPECTED_CLASSES [FAMILIES]

IMAGES: raw uint8 pixels, N images of 784 bytes; EXPECTED_CLASSES: comma-separated, what wharf's
own forward pass predicts for them. Each client family must get exactly those classes, through
every encoding it offers. Prints one line per check; exits non-zero at the first mismatch.
"""

import asyncio
import sys

import numpy as np

http_addr, grpc_addr, model, images_path, expected_text = sys.argv[1:6]
pixels = np.fromfile(images_path, dtype=np.uint8).reshape(-1, 784)
expected = np.array([int(c) for c in expected_text.split(",")], dtype=np.int64)
scaled = (pixels.astype(np.float32) / 255.0).reshape(-1, 784)
n = len(expected)


def check(what, classes, probabilities=None, labels=None):
    classes = np.asarray(classes).reshape(-1)
    if not np.array_equal(classes, expected):
        sys.exit(f"FAIL {what}: classes {classes.tolist()} != expected {expected.tolist()}")
    if probabilities is not None:
        p = np.asarray(probabilities).reshape(n, -1)
        if not np.allclose(p.sum(axis=1), 1.0, atol=1e-4) or not np.array_equal(p.argmax(axis=1), expected):
            sys.exit(f"FAIL {what}: probabilities disagree with the classes")
    if labels is not None and len(labels) != n:
        sys.exit(f"FAIL {what}: {len(labels)} labels for {n} images")
    print(f"ok   {what}")


def triton_http():
    import tritonclient.http as http

    c = http.InferenceServerClient(url=http_addr)
    assert c.is_server_live() and c.is_server_ready() and c.is_model_ready(model)
    meta = c.get_server_metadata()
    assert "binary_tensor_data" in meta["extensions"], meta
    assert c.get_model_metadata(model)["outputs"][0]["name"] == "probabilities"
    assert c.get_model_config(model)["input"][0]["data_type"] == "TYPE_FP32"
    index = c.get_model_repository_index()
    assert {"name": model, "version": "1", "state": "READY", "reason": ""} in index, index
    print("ok   tritonclient.http metadata, config, repository index")
    c.load_model(model)
    try:
        c.unload_model(model)
        sys.exit("FAIL tritonclient.http: unload was accepted by a polled repository")
    except http.InferenceServerException as e:
        assert "remove the model's directory" in str(e), e
    assert c.is_model_ready(model)
    print("ok   tritonclient.http load rescans, unload refused with the way to do it")

    def run(binary, datatype, outputs):
        data = scaled if datatype == "FP32" else pixels.reshape(-1, 784)
        inp = http.InferInput("input", [n, 784], datatype)
        inp.set_data_from_numpy(data, binary_data=binary)
        requested = None
        if outputs:
            requested = [http.InferRequestedOutput(o, binary_data=binary) for o in outputs]
        return c.infer(model, [inp], outputs=requested)

    # The client's default: binary inputs, and all outputs binary (binary_data_output).
    r = run(True, "FP32", None)
    check("tritonclient.http binary FP32 (defaults)", r.as_numpy("class"), r.as_numpy("probabilities"))
    r = run(True, "UINT8", ["class", "label"])
    check("tritonclient.http binary UINT8, BYTES label", r.as_numpy("class"), labels=r.as_numpy("label"))
    r = run(False, "FP32", ["probabilities", "class", "label"])
    check("tritonclient.http JSON", r.as_numpy("class"), r.as_numpy("probabilities"), r.as_numpy("label"))
    try:
        bad = http.InferInput("input", [n, 783], "FP32")
        bad.set_data_from_numpy(np.zeros((n, 783), np.float32))
        c.infer(model, [bad])
        sys.exit("FAIL tritonclient.http: a wrong shape was accepted")
    except http.InferenceServerException as e:
        assert "783" in str(e), e
        print("ok   tritonclient.http error names the shape")


def triton_grpc():
    import tritonclient.grpc as grpc

    c = grpc.InferenceServerClient(url=grpc_addr)
    assert c.is_server_live() and c.is_server_ready() and c.is_model_ready(model)
    assert c.get_server_metadata().name == "wharf-server"
    assert list(c.get_model_metadata(model).inputs[0].shape) == [-1, 28, 28]
    from tritonclient.grpc import model_config_pb2

    config = c.get_model_config(model).config
    assert config.input[0].data_type == model_config_pb2.TYPE_FP32, config
    assert [o.name for o in config.output] == ["probabilities", "class", "label"], config
    assert config.dynamic_batching.max_queue_delay_microseconds >= 0
    index = c.get_model_repository_index()
    assert [(m.name, m.version, m.state) for m in index.models] == [(model, "1", "READY")], index
    c.load_model(model)
    try:
        c.unload_model(model)
        sys.exit("FAIL tritonclient.grpc: unload was accepted by a polled repository")
    except grpc.InferenceServerException as e:
        assert "remove the model's directory" in str(e), e
    assert c.is_model_ready(model)
    print("ok   tritonclient.grpc config, repository index, load, unload refused")
    for datatype in ["FP32", "UINT8"]:
        data = scaled if datatype == "FP32" else pixels.reshape(-1, 784)
        inp = grpc.InferInput("input", [n, 784], datatype)
        inp.set_data_from_numpy(data)
        outputs = [grpc.InferRequestedOutput(o) for o in ["probabilities", "class", "label"]]
        r = c.infer(model, [inp], outputs=outputs)
        check(f"tritonclient.grpc raw {datatype}", r.as_numpy("class"), r.as_numpy("probabilities"), r.as_numpy("label"))
    r = c.infer(model, [inp])
    check("tritonclient.grpc default outputs", r.as_numpy("class"), r.as_numpy("probabilities"))


def kserve_clients():
    from kserve import InferenceGRPCClient, InferenceRESTClient, InferInput, InferRequest, RESTConfig

    async def main():
        for binary in [False, True]:
            rest = InferenceRESTClient(RESTConfig(protocol="v2", timeout=30))
            inp = InferInput("input", [n, 784], "FP32")
            inp.set_data_from_numpy(scaled, binary_data=binary)
            request = InferRequest(model_name=model, infer_inputs=[inp], request_id="k-1")
            res = await rest.infer(f"http://{http_addr}", request, model_name=model)
            out = {o.name: o.as_numpy() for o in res.outputs}
            check(f"kserve InferenceRESTClient v2 {'binary' if binary else 'JSON'}", out["class"], out["probabilities"])
            await rest.close()
        g = InferenceGRPCClient(url=grpc_addr)
        inp = InferInput("input", [n, 784], "FP32")
        inp.set_data_from_numpy(scaled, binary_data=True)
        request = InferRequest(model_name=model, infer_inputs=[inp], request_id="k-2")
        res = await g.infer(request)
        out = {o.name: o.as_numpy() for o in res.outputs}
        check("kserve InferenceGRPCClient raw", out["class"], out["probabilities"])
        inp = InferInput("input", [n, 784], "FP32")
        inp.set_data_from_numpy(scaled, binary_data=False)
        res = await g.infer(InferRequest(model_name=model, infer_inputs=[inp], request_id="k-3"))
        out = {o.name: o.as_numpy() for o in res.outputs}
        check("kserve InferenceGRPCClient typed contents", out["class"], out["probabilities"])
        await g.close()

    asyncio.run(main())


def check_tf_descriptors(path):
    """Every message, field, enum value and RPC of our TF protos (proto/tensorflow*/, compiled by
    build.rs into the FileDescriptorSet at `path`) must be TensorFlow's: same full name, field
    numbers, types, labels, oneofs and method types as in the descriptors its own modules register."""
    from google.protobuf import descriptor_pb2, descriptor_pool
    # Importing them registers TF's descriptors in the default pool.
    from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2  # noqa: F401
    from tensorflow.core.protobuf import error_codes_pb2, meta_graph_pb2  # noqa: F401
    from tensorflow_serving.apis import (  # noqa: F401
        classification_pb2, get_model_metadata_pb2, get_model_status_pb2, inference_pb2,
        model_management_pb2, model_pb2, model_service_pb2, predict_pb2,
        prediction_service_pb2, regression_pb2, status_pb2,
    )

    pool = descriptor_pool.Default()
    ours = descriptor_pb2.FileDescriptorSet.FromString(open(path, "rb").read())
    Field = descriptor_pb2.FieldDescriptorProto
    counts = {"messages": 0, "fields": 0, "enum values": 0, "rpcs": 0}

    def check_enum(full, enum):
        theirs = pool.FindEnumTypeByName(full)
        for value in enum.value:
            assert theirs.values_by_name[value.name].number == value.number, (full, value.name)
            counts["enum values"] += 1

    def check_message(full, message):
        theirs = pool.FindMessageTypeByName(full)
        counts["messages"] += 1
        for field in message.field:
            t = theirs.fields_by_name.get(field.name)
            where = f"{full}.{field.name}"
            assert t is not None, f"{where} is not in TensorFlow's {full}"
            assert (t.number, t.type) == (field.number, field.type), (where, t.number, t.type)
            assert t.is_repeated == (field.label == Field.LABEL_REPEATED), where
            their_type = t.message_type or t.enum_type
            if field.type_name:
                assert "." + their_type.full_name == field.type_name, (where, field.type_name)
            if field.HasField("oneof_index"):
                oneof = message.oneof_decl[field.oneof_index].name
                assert t.containing_oneof is not None and t.containing_oneof.name == oneof, where
            counts["fields"] += 1
        for nested in message.nested_type:
            check_message(f"{full}.{nested.name}", nested)
        for enum in message.enum_type:
            check_enum(f"{full}.{enum.name}", enum)

    files = [f for f in ours.file if f.package.startswith("tensorflow")]
    assert len(files) == 3, [f.name for f in files]
    for f in files:
        for message in f.message_type:
            check_message(f"{f.package}.{message.name}", message)
        for enum in f.enum_type:
            check_enum(f"{f.package}.{enum.name}", enum)
        for service in f.service:
            theirs = pool.FindServiceByName(f"{f.package}.{service.name}")
            for method in service.method:
                t = theirs.methods_by_name[method.name]
                assert "." + t.input_type.full_name == method.input_type, method.name
                assert "." + t.output_type.full_name == method.output_type, method.name
                counts["rpcs"] += 1
    summary = ", ".join(f"{v} {k}" for k, v in counts.items())
    print(f"ok   our TF Serving protos match TensorFlow's descriptors ({summary})")


def tfserving_grpc():
    # TensorFlow Serving's own client: tensorflow-serving-api's stubs with TensorFlow's
    # make_tensor_proto / make_ndarray, pointed at wharf-server's gRPC port instead of 8500.
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import grpc
    import tensorflow as tf
    from tensorflow.core.framework import tensor_pb2, types_pb2
    from tensorflow_serving.apis import (
        get_model_metadata_pb2,
        get_model_status_pb2,
        model_service_pb2_grpc,
        predict_pb2,
        prediction_service_pb2_grpc,
    )

    check_tf_descriptors(os.environ["WHARF_TF_DESCRIPTORS"])
    channel = grpc.insecure_channel(grpc_addr)
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)

    def predict(tensor, outputs=(), version=None, signature="serving_default"):
        request = predict_pb2.PredictRequest()
        request.model_spec.name = model
        request.model_spec.signature_name = signature
        if version is not None:
            request.model_spec.version.value = version
        request.inputs["input"].CopyFrom(tensor)
        request.output_filter.extend(outputs)
        return stub.Predict(request, timeout=30)

    def out(response, name):
        return tf.make_ndarray(response.outputs[name])

    # FP32 [N, 28, 28] (make_tensor_proto puts numpy arrays in tensor_content), default outputs.
    r = predict(tf.make_tensor_proto(scaled.reshape(n, 28, 28)))
    assert set(r.outputs) == {"probabilities", "class"}, list(r.outputs)
    assert r.model_spec.name == model and r.model_spec.version.value == 1, r.model_spec
    check("tensorflow-serving-api Predict FP32 [N, 28, 28]", out(r, "class"), out(r, "probabilities"))
    # UINT8 raw pixels [N, 784], version pinned, the label output by name.
    r = predict(tf.make_tensor_proto(pixels), outputs=["class", "label"], version=1)
    labels = out(r, "label")
    assert all(isinstance(l, bytes) and l for l in labels), labels
    check("tensorflow-serving-api Predict UINT8, version 1, DT_STRING label", out(r, "class"), labels=labels)
    # FP32 in the typed field (float_val), as hand-built TensorProtos have it.
    typed = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT)
    typed.tensor_shape.dim.add(size=n)
    typed.tensor_shape.dim.add(size=784)
    typed.float_val.extend(scaled.reshape(-1).tolist())
    r = predict(typed, outputs=["probabilities", "class"])
    check("tensorflow-serving-api Predict FP32 float_val", out(r, "class"), out(r, "probabilities"))

    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = model
    meta = stub.GetModelMetadata(request, timeout=30)
    signatures = get_model_metadata_pb2.SignatureDefMap()
    assert meta.metadata["signature_def"].Unpack(signatures), meta
    signature = signatures.signature_def["serving_default"]
    assert [d.size for d in signature.inputs["input"].tensor_shape.dim] == [-1, 28, 28], signature
    assert signature.outputs["probabilities"].dtype == types_pb2.DT_FLOAT, signature
    status = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(
        get_model_status_pb2.GetModelStatusRequest(model_spec={"name": model}), timeout=30
    )
    assert [(s.version, s.state) for s in status.model_version_status] == [
        (1, get_model_status_pb2.ModelVersionStatus.AVAILABLE)
    ], status
    print("ok   tensorflow-serving-api GetModelMetadata (SignatureDefMap), GetModelStatus")

    try:
        predict(tf.make_tensor_proto(scaled), signature="predict_images")
        sys.exit("FAIL tensorflow-serving-api: an unknown signature was accepted")
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.INVALID_ARGUMENT and "serving_default" in e.details(), e
    try:
        predict(tf.make_tensor_proto(np.zeros((n, 783), np.float32)))
        sys.exit("FAIL tensorflow-serving-api: a wrong shape was accepted")
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.INVALID_ARGUMENT and "783" in e.details(), e
    print("ok   tensorflow-serving-api errors are INVALID_ARGUMENT naming the problem")


# One family per process (tritonclient and kserve register the same protobuf names).
families = sys.argv[6].split(",") if len(sys.argv) > 6 else ["triton_http"]
for family in families:
    families_by_name = {"triton_http": triton_http, "triton_grpc": triton_grpc, "kserve": kserve_clients}
    families_by_name["tfserving_grpc"] = tfserving_grpc
    families_by_name[family]()
print(f"all client checks passed ({', '.join(families)})")
