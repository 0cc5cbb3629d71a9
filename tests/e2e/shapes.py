"""Checks raw responses against the official ECS model's output shapes, so a
member spelled or typed wrong fails the test that received it."""
import json

import botocore.session

_session = botocore.session.get_session()
ECS_MODEL = _session.get_service_model("ecs")
# Error codes a SigV4-protected JSON endpoint may answer besides the model's own.
PROTOCOL_ERRORS = {
    "SerializationException", "UnknownOperationException", "RequestEntityTooLargeException",
    "MissingAuthenticationTokenException", "IncompleteSignatureException",
    "InvalidSignatureException", "UnrecognizedClientException",
}


class ShapeError(AssertionError):
    pass


def check(shape, value, path="$"):
    t = shape.type_name
    if t == "structure":
        if not isinstance(value, dict):
            raise ShapeError(f"{path}: expected object for {shape.name}, got {value!r}")
        for k, v in value.items():
            if k not in shape.members:
                raise ShapeError(f"{path}: member {k!r} is not in {shape.name}")
            check(shape.members[k], v, f"{path}.{k}")
        for r in shape.required_members:
            if r not in value:
                raise ShapeError(f"{path}: required member {r!r} of {shape.name} missing")
    elif t == "list":
        if not isinstance(value, list):
            raise ShapeError(f"{path}: expected list, got {value!r}")
        for i, v in enumerate(value):
            check(shape.member, v, f"{path}[{i}]")
    elif t == "map":
        if not isinstance(value, dict):
            raise ShapeError(f"{path}: expected map, got {value!r}")
        for k, v in value.items():
            check(shape.value, v, f"{path}.{k}")
    elif t == "string":
        if not isinstance(value, str):
            raise ShapeError(f"{path}: expected string, got {value!r}")
        if shape.enum and value not in shape.enum:
            raise ShapeError(f"{path}: {value!r} is not one of {shape.enum}")
    elif t in ("integer", "long"):
        if not isinstance(value, int) or isinstance(value, bool):
            raise ShapeError(f"{path}: expected integer, got {value!r}")
    elif t == "boolean":
        if not isinstance(value, bool):
            raise ShapeError(f"{path}: expected boolean, got {value!r}")
    elif t in ("double", "float", "timestamp"):
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise ShapeError(f"{path}: expected number, got {value!r}")
    else:
        raise ShapeError(f"{path}: unhandled shape type {t}")


def check_response(operation_name, status, body):
    """Checks one raw ECS response body (bytes) for an operation."""
    op = ECS_MODEL.operation_model(operation_name)
    doc = json.loads(body or b"{}")
    if status == 200:
        if op.output_shape is not None:
            check(op.output_shape, doc)
        return
    if set(doc) != {"__type", "message"}:
        raise ShapeError(f"error body must hold __type and message, got {doc}")
    code = doc["__type"]
    known = {s.name for s in op.error_shapes} | {s.name for s in ECS_MODEL.error_shapes} | PROTOCOL_ERRORS
    if code not in known:
        raise ShapeError(f"error code {code} is not one the model or the protocol declares")
    if not doc["message"]:
        raise ShapeError("error message is empty")


def install(client, seen):
    """Checks every response the client receives; appends operation names to `seen`."""

    def before_parse(operation_model, response_dict, **_):
        seen.append(operation_model.name)
        check_response(operation_model.name, response_dict["status_code"], response_dict["body"])

    client.meta.events.register("before-parse.ecs.*", before_parse)
    return client
