"""The validation report: every section on a page that needs nothing from outside, figures embedded, the data
fingerprint recomputed independently, text escaped, and clear errors. (Parsed with the standard library's HTML parser,
and loaded in a real headless Chromium through Selenium.)"""

from __future__ import annotations

import hashlib
import os
import json
from html.parser import HTMLParser

import pandas as pd
import pytest

from sptgnn.evaluate.html_report import ReportError, render_report

SECTIONS = ["data", "design", "accuracy", "calibration", "autocorrelation", "applicability", "aggregated", "totals",
            "reproduce"]


class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.sections, self.images, self.external, self.text = [], [], [], []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "section":
            self.sections.append(a.get("id"))
        if tag == "img":
            self.images.append(a.get("src", ""))
        for key in ("src", "href"):
            if a.get(key, "").startswith(("http:", "https:", "//")):
                self.external.append(a[key])

    def handle_data(self, data):
        self.text.append(data)


@pytest.fixture(scope="module")
def evaluation(tmp_path_factory, samples_factory, config_factory):
    from sptgnn.evaluate.runfolder import evaluate_to_folder

    out = tmp_path_factory.mktemp("report") / "eval-blocks"
    cfg = config_factory(evaluate={"split": "random", "n_folds": 3, "baselines": ["qrf"], "moran_permutations": 9})
    evaluate_to_folder(cfg, samples_factory(45), out)
    return out


def test_page_has_every_section_and_embeds_its_figures(evaluation, tmp_path):
    check = {"dataset": "x", "blocks_scored": 12, "coverage_90_realisations": 0.9, "coverage_90_naive": 0.4,
             "mean_width_realisations": 2.0, "mean_width_naive": 0.5, "command": "python scripts/check_block_means.py"}
    (tmp_path / "check.json").write_text(json.dumps(check))
    page = _Page()
    page.feed(render_report([evaluation], [tmp_path / "check.json"]))
    assert page.sections == SECTIONS
    assert page.images
    assert all(src.startswith("data:image/png;base64,") for src in page.images)
    assert page.external == []
    text = " ".join(page.text)
    predictions = pd.read_csv(evaluation / "predictions.csv").drop_duplicates("sample_id").sort_values("sample_id")
    digest = hashlib.sha256("\n".join(f"{s}\t{float(y)!r}" for s, y in
                                      zip(predictions["sample_id"].astype(str), predictions["y_true"])).encode())
    assert digest.hexdigest() in text
    assert "qrf" in text
    assert "sptgnn" in text
    assert "0.4" in text


def test_sample_summary_map_share_and_totals(evaluation, tmp_path):
    import geopandas as gpd
    import numpy as np
    import rasterio
    from rasterio.transform import from_origin
    from shapely.geometry import box

    from sptgnn.evaluate.html_report import read_evaluation, read_map, read_totals

    y = pd.read_csv(evaluation / "predictions.csv").drop_duplicates("sample_id")["y_true"]
    summary = read_evaluation(evaluation)["summary"]
    assert summary["n"] == len(y)
    assert summary["median"] == pytest.approx(float(np.median(y)))
    assert summary["max"] == pytest.approx(float(y.max()))
    # a map with aoa and di bands: 3 of 4 valid pixels inside, one nodata pixel
    aoa = np.array([[1, 1], [0, 1]], "float32")
    di = np.array([[0.1, 0.2], [0.9, -9999.0]], "float32")
    aoa[1, 1] = -9999.0
    with rasterio.open(tmp_path / "m.tif", "w", driver="GTiff", width=2, height=2, count=2, dtype="float32",
                       nodata=-9999.0, transform=from_origin(0, 2, 1, 1), crs="EPSG:32633") as dst:
        dst.write(np.stack([aoa, di]))
        dst.descriptions = ("aoa", "di")
        dst.update_tags(di_threshold="0.5")
    m = read_map(tmp_path / "m.tif")
    assert m["pixels"] == 3
    assert m["aoa_share"] == pytest.approx(2 / 3)
    assert m["threshold"] == 0.5
    zones = gpd.GeoDataFrame({"name": ["west", None], "zone_kind": ["zone", "project"], "area_ha": [1.0, 1.0],
                              "stock_t_c_mean": [10.0, 10.0]}, geometry=[box(0, 0, 1, 1)] * 2, crs="EPSG:32633")
    zones.to_file(tmp_path / "t.gpkg", layer="zone_totals")
    gpd.GeoDataFrame(pd.DataFrame({"key": ["seed"], "value": ["7"]})).to_file(tmp_path / "t.gpkg", layer="provenance")
    t = read_totals(tmp_path / "t.gpkg")
    assert [r["label"] for r in t["rows"]] == ["west", "project total"]
    assert t["provenance"] == {"seed": "7"}
    page = _Page()
    page.feed(render_report([evaluation], maps=[tmp_path / "m.tif"], totals=[tmp_path / "t.gpkg"]))
    text = " ".join(page.text)
    assert "project total" in text
    assert "0.6667" in text
    with pytest.raises(ReportError, match="zone_totals"):
        read_totals(tmp_path / "m.tif")


def test_text_is_escaped(evaluation, tmp_path):
    import shutil

    bad = shutil.copytree(evaluation, tmp_path / "bad")
    metrics = json.loads((bad / "metrics.json").read_text())
    metrics["dataset"] = "<script>alert(1)</script>"
    (bad / "metrics.json").write_text(json.dumps(metrics))
    html = render_report([bad])
    assert "<script>" not in html
    assert "&lt;script&gt;" in html


def test_bad_folders_and_the_cli(evaluation, tmp_path):
    from typer.testing import CliRunner

    from sptgnn.cli import app

    with pytest.raises(ReportError, match="not an evaluation folder"):
        render_report([tmp_path])
    res = CliRunner().invoke(app, ["report", str(evaluation), "--out", str(tmp_path / "r.html")])
    assert res.exit_code == 0
    assert (tmp_path / "r.html").stat().st_size > 10_000
    res = CliRunner().invoke(app, ["report", str(tmp_path), "--out", str(tmp_path / "s.html")])
    assert res.exit_code == 2
    assert "not an evaluation folder" in res.output
    assert not (tmp_path / "s.html").exists()


def _chromium():
    """A headless Chromium driven by Selenium (Debian's chromium and chromium-driver, installed by .ci/run)."""
    import shutil

    browser, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if browser is None or driver is None:
        if os.environ.get("CI"):
            pytest.fail("CI must have chromium and chromedriver (.ci/run installs them)")
        pytest.skip("no chromium/chromedriver here (CI installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(driver), options=options)


def test_a_headless_browser_loads_the_page_and_finds_its_sections(evaluation, tmp_path):
    from selenium.webdriver.common.by import By

    from sptgnn.cli import app
    from typer.testing import CliRunner

    out = tmp_path / "report.html"
    res = CliRunner().invoke(app, ["report", str(evaluation), "--out", str(out)])
    assert res.exit_code == 0, res.output
    browser = _chromium()
    try:
        browser.get(out.as_uri())
        sections = browser.find_elements(By.CSS_SELECTOR, "section")
        assert [s.get_attribute("id") for s in sections] == SECTIONS
        for s in sections:  # each section is rendered with its visible heading
            heading = s.find_element(By.TAG_NAME, "h2")
            assert heading.is_displayed()
            assert heading.text.strip()
        images = browser.find_elements(By.TAG_NAME, "img")
        assert images
        assert (all(browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth", i) > 0
                              for i in images))  # the embedded PNGs decode
        fetched = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
        assert [u for u in fetched if not u.startswith("data:")] == []  # nothing loaded from outside the page
    finally:
        browser.quit()


def test_report_refuses_a_truncated_metrics_json(tmp_path):
    from sptgnn.evaluate.html_report import read_evaluation

    for name, text in (("metrics.json", '{"dataset": "x", "mod'), ("predictions.csv", "sample_id,y_true,model\n"),
                       ("config.yaml", "data: {}\n")):
        (tmp_path / name).write_text(text)
    with pytest.raises(ReportError, match="is not a metrics.json"):
        read_evaluation(tmp_path)
