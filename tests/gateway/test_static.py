"""`/` serves the dashboard page and `/static/` its directory."""

from __future__ import annotations

from pathlib import Path

import httpx

from testkit.gateway import Gateway, GatewayFactory


async def test_dashboard_page_and_static_files(
    gateway_factory: GatewayFactory, tmp_path: Path
) -> None:
    static = tmp_path / "static"
    static.mkdir()
    (static / "index.html").write_text("<!doctype html><title>smokesignal</title>")
    (static / "app.js").write_text("console.log('hi')")
    gateway = await gateway_factory(static_dir=static, gateway_token="t")
    async with httpx.AsyncClient(base_url=gateway.base_url) as http:
        page = await http.get("/")  # the page itself is not behind the API token
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert "smokesignal" in page.text
        script = await http.get("/static/app.js")
        assert script.status_code == 200
        assert "javascript" in script.headers["content-type"]
        assert (await http.get("/static/missing.js")).status_code == 404
        assert (await http.get("/static/../../etc/passwd")).status_code == 404


async def test_without_a_dashboard_page_the_root_is_404(
    gateway_factory: GatewayFactory, tmp_path: Path
) -> None:
    gateway = await gateway_factory(static_dir=tmp_path / "nothing-here")
    async with httpx.AsyncClient(base_url=gateway.base_url) as http:
        response = await http.get("/")
        assert response.status_code == 404
        assert response.json() == {"detail": "dashboard page missing"}


async def test_both_pages_get_the_filter_fields_written_once(gateway: Gateway) -> None:
    """static/partials/ holds the filter form's fields; each page includes them."""
    async with httpx.AsyncClient(base_url=gateway.base_url) as http:
        for path in ("/", "/stats"):
            page = await http.get(path)
            assert page.headers["content-type"].startswith("text/html")
            assert "<!-- include" not in page.text
            assert page.text.count('name="alert_level"') == 5, path
            assert 'name="false_positive"' in page.text
