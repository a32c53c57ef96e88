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


# One family per process (tritonclient and kserve register the same protobuf names).
families = sys.argv[6].split(",") if len(sys.argv) > 6 else ["triton_http"]
for family in families:
    {"triton_http": triton_http, "triton_grpc": triton_grpc, "kserve": kserve_clients}[family]()
print(f"all client checks passed ({', '.join(families)})")
