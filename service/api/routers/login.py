"""`/login` and `/logout`: how a browser gets into the dashboard when a token is set.

`GET /login` shows a one-field form; `POST /login` checks the token (constant time) and
answers with an HttpOnly, SameSite=Strict session cookie that expires after
`SWEEPDOC_SESSION_TTL_S` (in its signed value and its Max-Age) and a redirect back to the
page asked for. The token travels in the form body, never in a URL, so it stays out of
access logs and browser history. `/logout` revokes the sessions server-side (sessions.py),
so a copied cookie stops working too. Without a configured token both pages just lead to
the dashboard.
"""

from __future__ import annotations

import html
from typing import Annotated
from urllib.parse import parse_qs

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from service.api.auth import SESSION_COOKIE, TokenCheck, safe_next

router = APIRouter(include_in_schema=False)

# A token form has no business being larger than this (the body limit applies on top).
_MAX_FORM_BYTES = 4096

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>sweepdoc: log in</title>
<style>body{{font-family:sans-serif;max-width:28em;margin:4em auto}}
input{{font-size:1em;padding:.3em;width:100%;box-sizing:border-box;margin:.5em 0}}
.error{{color:#b00}}</style></head>
<body><h1>sweepdoc</h1>
<p>This server needs its API token (SWEEPDOC_API_TOKEN) to open the dashboard.</p>
{error}
<form method="post" action="/login">
<input type="hidden" name="next" value="{next}">
<label for="token">Token</label>
<input id="token" name="token" type="password" autocomplete="current-password" autofocus>
<input type="submit" value="Log in">
</form></body></html>
"""


def _check(request: Request) -> TokenCheck | None:
    check: TokenCheck | None = request.app.state.token_check
    return check


def _page(next_path: str, error: str = "", status_code: int = 200) -> HTMLResponse:
    shown = f'<p class="error">{html.escape(error)}</p>' if error else ""
    return HTMLResponse(
        _PAGE.format(error=shown, next=html.escape(next_path, quote=True)),
        status_code=status_code,
        headers={"Cache-Control": "no-store"},
    )


@router.get("/login")
def login_page(
    request: Request, next: Annotated[str | None, Query(max_length=2048)] = None
) -> Response:
    if _check(request) is None:
        return RedirectResponse(safe_next(next), status_code=303)
    return _page(safe_next(next))


@router.post("/login")
async def login(request: Request) -> Response:
    check = _check(request)
    body = await request.body()
    form = parse_qs(body[:_MAX_FORM_BYTES].decode("utf-8", errors="replace"))
    next_path = safe_next((form.get("next") or [""])[0])
    if check is None:
        return RedirectResponse(next_path, status_code=303)
    token = (form.get("token") or [""])[0]
    if not check.token_ok(token):
        return _page(next_path, "Wrong token: not the token of this server.", status_code=401)
    response = RedirectResponse(next_path, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        check.sessions.issue(),
        max_age=int(check.sessions.ttl_s),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    return response


@router.get("/logout")
def logout(request: Request) -> Response:
    check = _check(request)
    # Only a logged-in browser revokes: a foreign page's `<img src=/logout>` carries no
    # cookie (SameSite=Strict), so it cannot log everyone out.
    if check is not None and check.session_ok(request.headers.get("cookie")):
        check.sessions.revocations.revoke_all()
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    return response
