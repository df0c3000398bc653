"""The graph-runtime reference: LangGraph running the same two-node loop as
Cairn's agent benchmark (nodes that do nothing but note the time), with a
checkpoint after every step in SQLite and in PostgreSQL — written before the
next step (`durability="sync"`, what Cairn does) and in the background
(`"async"`, LangGraph's default); on SQLite also with Cairn's SQLite
durability (`synchronous=NORMAL` in WAL mode) beside SqliteSaver's default. Prints one JSON object: p50/p99 of the gap
between two nodes (one step's overhead), in ms.

Then whole agent steps: think calls the scripted LLM server (OpenAI's
Python SDK, the conversation growing) and act adds an observation, with a
checkpoint after each, 200 steps, measured between two thinks.

    python bench/graph_reference.py STEPS POSTGRES_ADMIN_URL SCRIPTED_LLM_URL
"""

import json
import os
import sqlite3
import sys
import tempfile
import time
from typing import TypedDict

import psycopg
from langgraph.checkpoint.postgres import PostgresSaver
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import END, StateGraph


class Loop(TypedDict):
    n: int
    messages: list


def build(steps, marks):
    def think(state):
        marks.append(time.perf_counter())
        return {"messages": state["messages"] + ["reply"]}

    def act(state):
        marks.append(time.perf_counter())
        return {"n": state["n"] + 1}

    graph = StateGraph(Loop)
    graph.add_node("think", think)
    graph.add_node("act", act)
    graph.set_entry_point("think")
    graph.add_edge("think", "act")
    graph.add_conditional_edges("act", lambda s: "think" if s["n"] < steps // 2 else END)
    return graph


def build_agent(steps, marks, client):
    def think(state):
        marks.append(time.perf_counter())
        messages = [{"role": "user", "content": "Count to a thousand, one step at a time."}]
        for i, text in enumerate(state["messages"]):
            messages.append({"role": "assistant" if i % 2 == 0 else "user", "content": text})
        reply = client.chat.completions.create(model="m", messages=messages, max_tokens=100)
        return {"messages": state["messages"] + [reply.choices[0].message.content]}

    def act(state):
        n = state["n"] + 1
        return {"n": n, "messages": state["messages"] + [f"Observation: step {n} done"]}

    graph = StateGraph(Loop)
    graph.add_node("think", think)
    graph.add_node("act", act)
    graph.set_entry_point("think")
    graph.add_edge("think", "act")
    graph.add_conditional_edges("act", lambda s: "think" if s["n"] < steps else END)
    return graph


def measure_agent(steps, saver, client):
    marks = []
    app = build_agent(steps, marks, client).compile(checkpointer=saver)
    config = {"configurable": {"thread_id": f"agent-{time.time_ns()}"}, "recursion_limit": 2 * steps + 10}
    app.invoke({"n": 0, "messages": []}, config, durability="sync")
    gaps = sorted((b - a) * 1000 for a, b in zip(marks[10:], marks[11:]))
    return gaps[len(gaps) // 2], gaps[min(len(gaps) - 1, round((len(gaps) - 1) * 0.99))]


def measure(steps, saver, durability):
    marks = []
    app = build(steps, marks).compile(checkpointer=saver)
    config = {"configurable": {"thread_id": f"bench-{time.time_ns()}"}, "recursion_limit": steps + 10}
    app.invoke({"n": 0, "messages": []}, config, durability=durability)
    gaps = sorted((b - a) * 1000 for a, b in zip(marks[20:], marks[21:]))
    return gaps[len(gaps) // 2], gaps[min(len(gaps) - 1, round((len(gaps) - 1) * 0.99))]


def main():
    steps = int(sys.argv[1])
    admin = sys.argv[2]
    llm = sys.argv[3] if len(sys.argv) > 3 else None
    client = None
    if llm:
        import socket

        import httpx
        from openai import OpenAI

        # TCP_NODELAY, as Cairn's client has: without it the request's body
        # waits for the server's delayed ACK (~40 ms) and the reference would
        # measure that instead of itself.
        transport = httpx.HTTPTransport(socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)])
        client = OpenAI(base_url=llm + "/v1", api_key="scripted", http_client=httpx.Client(transport=transport))
    result = {}
    with tempfile.TemporaryDirectory() as folder:
        connection = sqlite3.connect(os.path.join(folder, "lg.db"), check_same_thread=False)
        saver = SqliteSaver(connection)
        for durability in ("sync", "async"):
            p50, p99 = measure(steps, saver, durability)
            result[f"sqlite_{durability}_p50_ms"], result[f"sqlite_{durability}_p99_ms"] = p50, p99
        if client:
            result["agent_step_sqlite_p50_ms"], result["agent_step_sqlite_p99_ms"] = measure_agent(200, saver, client)
        # SqliteSaver's own set-up leaves SQLite's default synchronous=FULL
        # (an fsync per commit: durable across power loss). Cairn opens SQLite
        # with synchronous=NORMAL in WAL mode (durable across a crash of the
        # process, not of the machine); this series gives LangGraph the same.
        normal = sqlite3.connect(os.path.join(folder, "lg-normal.db"), check_same_thread=False)
        normal_saver = SqliteSaver(normal)
        normal_saver.setup()
        normal.execute("PRAGMA synchronous=NORMAL")
        p50, p99 = measure(steps, normal_saver, "sync")
        result["sqlite_sync_normal_p50_ms"], result["sqlite_sync_normal_p99_ms"] = p50, p99
    name = f"cairn_bench_lg_{os.getpid()}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    url = admin.rsplit("/", 1)[0] + "/" + name
    try:
        with PostgresSaver.from_conn_string(url) as saver:
            saver.setup()
            for durability in ("sync", "async"):
                p50, p99 = measure(steps, saver, durability)
                result[f"postgres_{durability}_p50_ms"], result[f"postgres_{durability}_p99_ms"] = p50, p99
            if client:
                p50, p99 = measure_agent(200, saver, client)
                result["agent_step_postgres_p50_ms"], result["agent_step_postgres_p99_ms"] = p50, p99
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    print(json.dumps({k: round(v, 3) for k, v in result.items()}))


if __name__ == "__main__":
    main()
