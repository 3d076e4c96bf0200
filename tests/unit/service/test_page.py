"""Test that the web page and its assets are served, locked to this origin."""

from .conftest import serve


def test_page_is_served_at_the_root_with_a_strict_content_policy() -> None:
    with serve() as client:
        response = client.get("/")

    policy = response.headers["content-security-policy"]
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert 'id="photo-input"' in response.text
    assert "default-src 'none'" in policy
    assert "script-src 'self'" in policy
    assert 'name="viewport"' in response.text


def test_page_script_and_style_are_served() -> None:
    with serve() as client:
        script = client.get("/static/page.js")
        style = client.get("/static/page.css")

    assert script.status_code == 200
    assert "/v1/identify" in script.text
    assert "innerHTML" not in script.text
    assert style.status_code == 200


def test_page_loads_nothing_from_other_hosts() -> None:
    with serve() as client:
        texts = [client.get(path).text for path in ("/", "/static/page.js", "/static/page.css")]

    assert not any("http://" in text or "https://" in text for text in texts)
