"""JSON-RPC client of an archive-node daemon (HTTP, bearer token)."""

import itertools

import requests


class RpcError(Exception):
    def __init__(self, code: int, message: str):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class RpcClient:
    _ids = itertools.count(1)

    def __init__(self, url: str, token: str):
        self.url = url
        self.token = token

    def post(self, body, token: str | None = "default", timeout=30) -> requests.Response:
        headers = {"content-type": "application/json"}
        token = self.token if token == "default" else token
        if token is not None:
            headers["authorization"] = f"Bearer {token}"
        return requests.post(self.url, json=body, headers=headers, timeout=timeout)

    def call(self, method: str, params=None, timeout=120):
        body = {"jsonrpc": "2.0", "id": next(self._ids), "method": method}
        if params is not None:
            body["params"] = params
        r = self.post(body, timeout=timeout)
        r.raise_for_status()
        reply = r.json()
        if "error" in reply:
            raise RpcError(reply["error"]["code"], reply["error"]["message"])
        return reply["result"]
