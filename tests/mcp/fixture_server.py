#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Fixture MCP server for portcullis' MCP tests, written with the MCP Python SDK.

It implements what the MCP conformance suite's server scenarios call (tools
test_*, resources test://..., prompts test_*, completion, logging, sampling,
elicitation, progress, SSE resumption) plus a few tools the integration tests
and bench/mcp use: echo, add, sleep, cancelled, pid, add_tool, headers, trace.

    fixture_server.py --port 3001 [--name fixture]   # Streamable HTTP on 127.0.0.1:3001/mcp
    fixture_server.py --stdio [--name fixture]       # stdio
"""

from __future__ import annotations

import argparse
import base64
import itertools
import json
import os
import struct
import sys
import warnings
import zlib
from typing import Any

import anyio
import mcp_types as types
from mcp.server.lowlevel import NotificationOptions, Server
from mcp.server.models import InitializationOptions
from mcp.server.streamable_http import EventStore
from mcp.shared.exceptions import MCPError

warnings.filterwarnings("ignore", category=DeprecationWarning)
warnings.filterwarnings("ignore", message=".*deprecated.*")


def _png_1x1_red() -> str:
    """A 1x1 red PNG, built here rather than shipped as a blob."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00\xff\x00\x00")
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    return base64.b64encode(png).decode()


def _wav_silence() -> str:
    """A tiny 8 kHz mono 16-bit WAV of 8 silent samples."""
    samples = b"\x00\x00" * 8
    fmt = struct.pack("<HHIIHH", 1, 1, 8000, 16000, 2, 16)
    riff = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(samples)) + samples
    return base64.b64encode(b"RIFF" + struct.pack("<I", len(riff)) + riff).decode()


PNG = _png_1x1_red()
WAV = _wav_silence()
NO_ARGS: dict[str, Any] = {"type": "object", "properties": {}}
LOG_LEVELS = ["debug", "info", "notice", "warning", "error", "critical", "alert", "emergency"]


def progress_token(ctx) -> str | int | None:
    meta = ctx.meta or {}
    return meta.get("progressToken", meta.get("progress_token"))


def text(s: str) -> types.TextContent:
    return types.TextContent(type="text", text=s)


def result(s: str, is_error: bool = False) -> types.CallToolResult:
    return types.CallToolResult(content=[text(s)], is_error=is_error)


class MemoryEventStore(EventStore):
    """Keeps every SSE event so a client can resume a stream with Last-Event-ID."""

    def __init__(self) -> None:
        self._events: list[tuple[str, str, Any]] = []  # (event id, stream id, message)
        self._ids = itertools.count(1)

    async def store_event(self, stream_id, message):
        event_id = str(next(self._ids))
        self._events.append((event_id, stream_id, message))
        return event_id

    async def replay_events_after(self, last_event_id, send_callback):
        from mcp.server.streamable_http import EventMessage

        stream = next((s for e, s, _ in self._events if e == last_event_id), None)
        if stream is None:
            return None
        seen = False
        for event_id, stream_id, message in self._events:
            if seen and stream_id == stream and message is not None:
                await send_callback(EventMessage(message, event_id))
            seen = seen or event_id == last_event_id
        return stream


class Fixture:
    """The tools, resources and prompts; one instance per server process."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.extra_tools: dict[str, types.Tool] = {}
        self.log_level: dict[int, str] = {}  # per session (id of the session object)
        self.subscriptions: set[str] = set()
        self.cancelled: list[str] = []

    # ---- tools --------------------------------------------------------------
    def tools(self) -> list[types.Tool]:
        def tool(name: str, description: str, schema: dict[str, Any] | None = None) -> types.Tool:
            return types.Tool(name=name, description=description, input_schema=schema or NO_ARGS)

        def args(**props: str) -> dict[str, Any]:
            return {
                "type": "object",
                "properties": {k: {"type": v} for k, v in props.items()},
                "required": list(props),
            }

        return [
            tool("test_simple_text", "Returns a simple text response"),
            tool("test_image_content", "Returns a 1x1 red PNG"),
            tool("test_audio_content", "Returns a tiny WAV"),
            tool("test_embedded_resource", "Returns an embedded text resource"),
            tool("test_multiple_content_types", "Returns text, image and an embedded resource"),
            tool("test_tool_with_logging", "Sends three log notifications while it runs"),
            tool("test_error_handling", "Always fails (isError result)"),
            tool("test_tool_with_progress", "Reports progress 0, 50, 100 of 100"),
            tool("test_sampling", "Asks the client's LLM (sampling/createMessage)", args(prompt="string")),
            tool("test_elicitation", "Asks the user (elicitation/create)", args(message="string")),
            tool("test_elicitation_sep1034_defaults", "Elicitation with defaults for every primitive type"),
            tool("test_elicitation_sep1330_enums", "Elicitation with the five enum shapes"),
            tool("test_reconnection", "Closes its SSE stream mid-call; the result comes on resumption"),
            types.Tool(
                name="json_schema_2020_12_tool",
                description="Tool with JSON Schema 2020-12 features",
                input_schema={
                    "$schema": "https://json-schema.org/draft/2020-12/schema",
                    "type": "object",
                    "$defs": {
                        "address": {
                            "type": "object",
                            "properties": {"street": {"type": "string"}, "city": {"type": "string"}},
                        }
                    },
                    "properties": {"name": {"type": "string"}, "address": {"$ref": "#/$defs/address"}},
                    "additionalProperties": False,
                },
            ),
            tool("echo", "Returns '<server name>: <text>'", args(text="string")),
            tool("add", "Returns a + b", args(a="number", b="number")),
            tool(
                "sleep",
                "Sleeps for 'seconds', reporting progress every 0.1 s; 'tag' names it in 'cancelled'",
                {
                    "type": "object",
                    "properties": {"seconds": {"type": "number"}, "tag": {"type": "string"}},
                    "required": ["seconds"],
                },
            ),
            tool("cancelled", "The 'tag' arguments of the sleep calls that were cancelled (JSON list)"),
            tool("pid", "Returns this server's process id"),
            tool("add_tool", "Adds a tool named 'name' and sends tools/list_changed", args(name="string")),
            tool("headers", "Returns the HTTP request headers this call arrived with (JSON)"),
            tool("trace", "Returns the trace context this call carried: traceparent header and _meta (JSON)"),
            *self.extra_tools.values(),
        ]

    async def call_tool(self, ctx, params: types.CallToolRequestParams) -> types.CallToolResult:
        name, a = params.name, params.arguments or {}
        session, rid = ctx.session, ctx.request_id
        match name:
            case "test_simple_text":
                return result("This is a simple text response for testing.")
            case "test_image_content":
                return types.CallToolResult(content=[types.ImageContent(type="image", data=PNG, mime_type="image/png")])
            case "test_audio_content":
                return types.CallToolResult(content=[types.AudioContent(type="audio", data=WAV, mime_type="audio/wav")])
            case "test_embedded_resource":
                return types.CallToolResult(
                    content=[
                        types.EmbeddedResource(
                            type="resource",
                            resource=types.TextResourceContents(
                                uri="test://embedded-resource",
                                mime_type="text/plain",
                                text="This is an embedded resource content.",
                            ),
                        )
                    ]
                )
            case "test_multiple_content_types":
                return types.CallToolResult(
                    content=[
                        text("Multiple content types test:"),
                        types.ImageContent(type="image", data=PNG, mime_type="image/png"),
                        types.EmbeddedResource(
                            type="resource",
                            resource=types.TextResourceContents(
                                uri="test://mixed-content-resource",
                                mime_type="application/json",
                                text=json.dumps({"test": "data", "value": 123}),
                            ),
                        ),
                    ]
                )
            case "test_tool_with_logging":
                for i, msg in enumerate(["Tool execution started", "Tool processing data", "Tool execution completed"]):
                    if i:
                        await anyio.sleep(0.05)
                    await self.log(session, "info", msg, rid)
                return result("Tool with logging executed successfully")
            case "test_error_handling":
                return result("This tool intentionally returns an error for testing", is_error=True)
            case "test_tool_with_progress":
                token = progress_token(ctx)
                for i, p in enumerate([0, 50, 100]):
                    if i:
                        await anyio.sleep(0.05)
                    if token is not None:
                        await session.send_progress_notification(token, p, 100, related_request_id=rid)
                return result("Tool with progress executed successfully")
            case "test_sampling":
                r = await session.create_message(
                    messages=[types.SamplingMessage(role="user", content=text(str(a.get("prompt", ""))))],
                    max_tokens=100,
                    related_request_id=rid,
                )
                answer = r.content.text if isinstance(r.content, types.TextContent) else json.dumps(r.model_dump())
                return result(f"LLM response: {answer}")
            case "test_elicitation":
                r = await session.elicit_form(
                    str(a.get("message", "")),
                    {
                        "type": "object",
                        "properties": {
                            "username": {"type": "string", "description": "User's response"},
                            "email": {"type": "string", "description": "User's email address"},
                        },
                        "required": ["username", "email"],
                    },
                    related_request_id=rid,
                )
                return result(f"User response: action={r.action}, content={json.dumps(r.content)}")
            case "test_elicitation_sep1034_defaults":
                r = await session.elicit_form(
                    "Please review and update the form fields with defaults",
                    {
                        "type": "object",
                        "properties": {
                            "name": {"type": "string", "description": "User name", "default": "John Doe"},
                            "age": {"type": "integer", "description": "User age", "default": 30},
                            "score": {"type": "number", "description": "User score", "default": 95.5},
                            "status": {
                                "type": "string",
                                "description": "User status",
                                "enum": ["active", "inactive", "pending"],
                                "default": "active",
                            },
                            "verified": {"type": "boolean", "description": "Verification status", "default": True},
                        },
                        "required": [],
                    },
                    related_request_id=rid,
                )
                return result(f"Elicitation completed: action={r.action}, content={json.dumps(r.content)}")
            case "test_elicitation_sep1330_enums":
                r = await session.elicit_form(
                    "Please select options from the enum fields",
                    {
                        "type": "object",
                        "properties": {
                            "untitledSingle": {"type": "string", "enum": ["option1", "option2", "option3"]},
                            "titledSingle": {
                                "type": "string",
                                "oneOf": [
                                    {"const": "value1", "title": "First Option"},
                                    {"const": "value2", "title": "Second Option"},
                                    {"const": "value3", "title": "Third Option"},
                                ],
                            },
                            "legacyEnum": {
                                "type": "string",
                                "enum": ["opt1", "opt2", "opt3"],
                                "enumNames": ["Option One", "Option Two", "Option Three"],
                            },
                            "untitledMulti": {
                                "type": "array",
                                "items": {"type": "string", "enum": ["option1", "option2", "option3"]},
                            },
                            "titledMulti": {
                                "type": "array",
                                "items": {
                                    "anyOf": [
                                        {"const": "value1", "title": "First Choice"},
                                        {"const": "value2", "title": "Second Choice"},
                                        {"const": "value3", "title": "Third Choice"},
                                    ]
                                },
                            },
                        },
                        "required": [],
                    },
                    related_request_id=rid,
                )
                return result(f"Elicitation completed: action={r.action}, content={json.dumps(r.content)}")
            case "test_reconnection":
                await anyio.sleep(0.1)
                if ctx.close_sse_stream is not None:
                    await ctx.close_sse_stream()
                await anyio.sleep(0.2)
                return result("Reconnection test completed successfully")
            case "json_schema_2020_12_tool":
                return result(f"json_schema_2020_12_tool called with {json.dumps(a, sort_keys=True)}")
            case "echo":
                return result(f"{self.name}: {a.get('text', '')}")
            case "add":
                return result(str(a.get("a", 0) + a.get("b", 0)))
            case "sleep":
                seconds = float(a.get("seconds", 1))
                token = progress_token(ctx)
                steps = max(1, int(seconds / 0.1))
                try:
                    for i in range(steps):
                        await anyio.sleep(seconds / steps)
                        if token is not None:
                            await session.send_progress_notification(token, i + 1, steps, related_request_id=rid)
                except anyio.get_cancelled_exc_class():
                    self.cancelled.append(str(a.get("tag", "")))
                    raise
                return result(f"{self.name}: slept {seconds:g}s")
            case "cancelled":
                return result(json.dumps(self.cancelled))
            case "pid":
                return result(str(os.getpid()))
            case "add_tool":
                new = str(a.get("name", "added"))
                self.extra_tools[new] = types.Tool(
                    name=new, description="Added at run time by add_tool", input_schema=NO_ARGS
                )
                await session.send_tool_list_changed()
                return result(f"added {new}")
            case "headers":
                req = ctx.request
                hdrs = dict(req.headers) if req is not None and hasattr(req, "headers") else {}
                return result(json.dumps(hdrs, sort_keys=True))
            case "trace":
                req = ctx.request
                hdrs = req.headers if req is not None and hasattr(req, "headers") else {}
                meta = ctx.meta or {}
                return result(json.dumps({"header": hdrs.get("traceparent"), "meta": meta.get("traceparent")}))
        if name in self.extra_tools:
            return result(f"{self.name}: {name} called")
        raise MCPError(code=-32602, message=f"Unknown tool: {name}")

    async def log(self, session, level: str, data: str, rid) -> None:
        floor = self.log_level.get(id(session), "debug")
        if LOG_LEVELS.index(level) < LOG_LEVELS.index(floor):
            return
        await session.send_log_message(level, data, logger=self.name, related_request_id=rid)

    # ---- resources ----------------------------------------------------------
    RESOURCES = [
        types.Resource(
            uri="test://static-text",
            name="static-text",
            description="A static text resource",
            mime_type="text/plain",
        ),
        types.Resource(
            uri="test://static-binary",
            name="static-binary",
            description="A static binary resource (1x1 PNG)",
            mime_type="image/png",
        ),
        types.Resource(
            uri="test://watched-resource",
            name="watched-resource",
            description="A resource clients can subscribe to",
            mime_type="text/plain",
        ),
    ]

    async def read_resource(self, uri: str) -> types.ReadResourceResult:
        if uri == "test://static-text":
            contents = [
                types.TextResourceContents(
                    uri=uri, mime_type="text/plain", text="This is the content of the static text resource."
                )
            ]
        elif uri == "test://static-binary":
            contents = [types.BlobResourceContents(uri=uri, mime_type="image/png", blob=PNG)]
        elif uri == "test://watched-resource":
            contents = [types.TextResourceContents(uri=uri, mime_type="text/plain", text="Watched resource content.")]
        elif uri.startswith("test://template/") and uri.endswith("/data"):
            rid = uri[len("test://template/") : -len("/data")]
            body = json.dumps({"id": rid, "templateTest": True, "data": f"Data for ID: {rid}"}, separators=(",", ":"))
            contents = [types.TextResourceContents(uri=uri, mime_type="application/json", text=body)]
        else:
            raise ValueError(f"Resource not found: {uri}")
        return types.ReadResourceResult(contents=contents)

    # ---- prompts ------------------------------------------------------------
    PROMPTS = [
        types.Prompt(name="test_simple_prompt", description="A simple prompt without arguments"),
        types.Prompt(
            name="test_prompt_with_arguments",
            description="A prompt with two required arguments",
            arguments=[
                types.PromptArgument(name="arg1", description="First test argument", required=True),
                types.PromptArgument(name="arg2", description="Second test argument", required=True),
            ],
        ),
        types.Prompt(
            name="test_prompt_with_embedded_resource",
            description="A prompt that embeds a resource",
            arguments=[types.PromptArgument(name="resourceUri", description="URI to embed", required=True)],
        ),
        types.Prompt(name="test_prompt_with_image", description="A prompt with an image"),
    ]

    async def get_prompt(self, params: types.GetPromptRequestParams) -> types.GetPromptResult:
        a = params.arguments or {}

        def user(content) -> types.PromptMessage:
            return types.PromptMessage(role="user", content=content)

        match params.name:
            case "test_simple_prompt":
                msgs = [user(text("This is a simple prompt for testing."))]
            case "test_prompt_with_arguments":
                msgs = [user(text(f"Prompt with arguments: arg1='{a.get('arg1', '')}', arg2='{a.get('arg2', '')}'"))]
            case "test_prompt_with_embedded_resource":
                res = types.TextResourceContents(
                    uri=a.get("resourceUri", "test://example-resource"),
                    mime_type="text/plain",
                    text="Embedded resource content for testing.",
                )
                msgs = [
                    user(types.EmbeddedResource(type="resource", resource=res)),
                    user(text("Please process the embedded resource above.")),
                ]
            case "test_prompt_with_image":
                msgs = [
                    user(types.ImageContent(type="image", data=PNG, mime_type="image/png")),
                    user(text("Please analyze the image above.")),
                ]
            case _:
                raise ValueError(f"Unknown prompt: {params.name}")
        return types.GetPromptResult(messages=msgs)

    # ---- the SDK server -----------------------------------------------------
    def server(self) -> Server:
        fx = self

        async def list_tools(ctx, params):
            return types.ListToolsResult(tools=fx.tools())

        async def call_tool(ctx, params):
            return await fx.call_tool(ctx, params)

        async def list_resources(ctx, params):
            return types.ListResourcesResult(resources=fx.RESOURCES)

        async def list_templates(ctx, params):
            return types.ListResourceTemplatesResult(
                resource_templates=[
                    types.ResourceTemplate(
                        uri_template="test://template/{id}/data",
                        name="template",
                        description="Data for an id",
                        mime_type="application/json",
                    )
                ]
            )

        async def read_resource(ctx, params):
            return await fx.read_resource(str(params.uri))

        async def subscribe(ctx, params):
            fx.subscriptions.add(str(params.uri))
            return types.EmptyResult()

        async def unsubscribe(ctx, params):
            fx.subscriptions.discard(str(params.uri))
            return types.EmptyResult()

        async def list_prompts(ctx, params):
            return types.ListPromptsResult(prompts=fx.PROMPTS)

        async def get_prompt(ctx, params):
            return await fx.get_prompt(params)

        async def complete(ctx, params):
            value = params.argument.value
            pool = ["paris", "park", "party", "hello", "world"]
            values = [v for v in pool if v.startswith(value)]
            return types.CompleteResult(completion=types.Completion(values=values, total=len(values), has_more=False))

        async def set_level(ctx, params):
            fx.log_level[id(ctx.session)] = params.level
            return types.EmptyResult()

        class FixtureServer(Server):
            def create_initialization_options(self, notification_options=None, *a, **kw) -> InitializationOptions:
                opts = notification_options or NotificationOptions(
                    prompts_changed=True, resources_changed=True, tools_changed=True
                )
                return super().create_initialization_options(opts, *a, **kw)

        return FixtureServer(
            self.name,
            version="1.0.0",
            on_list_tools=list_tools,
            on_call_tool=call_tool,
            on_list_resources=list_resources,
            on_list_resource_templates=list_templates,
            on_read_resource=read_resource,
            on_subscribe_resource=subscribe,
            on_unsubscribe_resource=unsubscribe,
            on_list_prompts=list_prompts,
            on_get_prompt=get_prompt,
            on_completion=complete,
            on_set_logging_level=set_level,
        )


async def serve_stdio(fx: Fixture) -> None:
    from mcp.server.stdio import stdio_server

    server = fx.server()
    async with stdio_server() as (read, write):
        await server.run(read, write, server.create_initialization_options())


def serve_http(fx: Fixture, port: int, json_response: bool = False) -> None:
    import uvicorn

    app = fx.server().streamable_http_app(
        streamable_http_path="/mcp",
        json_response=json_response,
        event_store=None if json_response else MemoryEventStore(),
        retry_interval=500,
        host="127.0.0.1",
    )
    print(f"fixture {fx.name}: listening on http://127.0.0.1:{port}/mcp", file=sys.stderr, flush=True)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = ap.add_mutually_exclusive_group(required=True)
    mode.add_argument("--port", type=int, help="serve Streamable HTTP on 127.0.0.1:PORT/mcp")
    mode.add_argument("--stdio", action="store_true", help="serve over stdin/stdout")
    ap.add_argument("--name", default="fixture", help="server name (echo answers '<name>: text')")
    ap.add_argument("--json-response", action="store_true", help="HTTP: answer POSTs with JSON, not SSE streams")
    opts = ap.parse_args()
    fx = Fixture(opts.name)
    if opts.stdio:
        anyio.run(serve_stdio, fx)
    else:
        serve_http(fx, opts.port, opts.json_response)
    return 0


if __name__ == "__main__":
    sys.exit(main())
