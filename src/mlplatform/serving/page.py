"""The web page: a form for the raw features (built from the spec), the result and the model card.

Plain HTML and a few lines of JavaScript calling the same /predict and /model the
API users call, so the page can never disagree with the API.
"""

from __future__ import annotations

from functools import lru_cache
from html import escape

from mlplatform.dataset import CategoricalFeature, NumericFeature
from mlplatform.serving.schemas import describe, example_patient
from mlplatform.spec import SPEC


def _input(feature: NumericFeature | CategoricalFeature, value: float | int) -> str:
    name = feature.name
    hint = escape(describe(feature))
    label = f'<label for="{name}"><b>{name}</b> <small>{hint}</small></label>'
    if isinstance(feature, CategoricalFeature):
        options = ['<option value="">unknown</option>'] + [
            f'<option value="{code}"{" selected" if code == value else ""}>{code}: {escape(text)}</option>'
            for code, text in feature.codes.items()
        ]
        return f'{label}<select id="{name}" name="{name}">{"".join(options)}</select>'
    step = "1" if feature.integer else "any"
    return (
        f'{label}<input id="{name}" name="{name}" type="number" step="{step}" '
        f'min="{feature.minimum:g}" max="{feature.maximum:g}" value="{value}" '
        f'placeholder="empty = unknown">'
    )


_SCRIPT = """
const form = document.getElementById('patient');
const out = document.getElementById('result');
const headers = () => {
  const h = {'Content-Type': 'application/json'};
  const key = document.getElementById('api_key').value;
  if (key) h['X-API-Key'] = key;
  return h;
};
const esc = (v) => String(v).replace(/[&<>"]/g, (c) => ({'&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;'}[c]));
const num = (v) => (v === null || v === undefined) ? 'n/a' : Number(v).toFixed(3);
const table = (head, rows) => `<table><tr>${head.map(h => `<th>${esc(h)}</th>`).join('')}</tr>` +
  rows.map(r => `<tr>${r.map(c => `<td>${esc(c)}</td>`).join('')}</tr>`).join('') + '</table>';
// The model card of the model in use, from /model (the same facts as its model_card.md).
function modelCard(m) {
  const facts = [
    ['model', `${m.name} version ${m.version}`],
    ['dataset version', m.dataset_version ?? 'unknown'],
    ['decision threshold', m.threshold === undefined || m.threshold === null ? '0.5 (default)'
      : `${num(m.threshold)} (policy ${m.threshold_policy ?? 'unknown'})`],
    ['calibration', m.calibration ?? 'none recorded'],
    ['backend', `${m.backend}: ${m.backend_reason}`],
    ['loaded at', m.loaded_at],
  ];
  let html = table(['', ''], facts);
  if (m.intervals) {
    html += '<h3>Test metrics (95% bootstrap intervals)</h3>' + table(['metric', 'estimate', '95% interval'],
      Object.entries(m.intervals).map(([k, i]) => [k, num(i.estimate), `[${num(i.low)}, ${num(i.high)}]`]));
  } else {
    html += '<h3>Test metrics</h3>' + table(['metric', 'value'],
      Object.entries(m.metrics).filter(([k]) => k.includes('test_')).map(([k, v]) => [k, num(v)]));
  }
  if (m.by_source && m.by_source.length) {
    const keys = Object.keys(m.by_source[0]).filter(k => !['source', 'rows', 'positives'].includes(k));
    html += '<h3>By hospital (test split)</h3>' + table(['source', 'rows', 'positives', ...keys],
      m.by_source.map(r => [r.source, r.rows, r.positives, ...keys.map(k => num(r[k]))]));
  }
  return html + '<p><small>Intended use: decision support for clinicians, not a diagnosis. ' +
    'The test split is small: read the intervals, not only the estimates.</small></p>';
}
async function showModel() {
  const r = await fetch('model');
  const box = document.getElementById('model');
  if (r.ok) box.innerHTML = modelCard(await r.json());
  else box.textContent = (await r.json()).detail;
}
form.addEventListener('submit', async (event) => {
  event.preventDefault();
  const body = {};
  for (const el of form.querySelectorAll('input[type=number], select')) {
    body[el.name] = el.value === '' ? null : Number(el.value);
  }
  out.className = '';
  out.textContent = 'predicting...';
  const r = await fetch('predict', {method: 'POST', headers: headers(), body: JSON.stringify(body)});
  const data = await r.json();
  if (r.ok) {
    out.className = 'ok';
    out.innerHTML = `Prediction: <b id="label">${data.label_name}</b> (label ${data.label})<br>` +
      `Probability of disease: <b id="probability">${data.probability.toFixed(3)}</b><br>` +
      `Model: ${data.model_name} version <b id="version">${data.model_version}</b>`;
  } else {
    out.className = 'error';
    const detail = Array.isArray(data.detail)
      ? data.detail.map(e => `${e.loc.slice(1).join('.')}: ${e.msg}`).join('\\n') : data.detail;
    out.textContent = `Error ${r.status}: ${detail}`;
  }
  showModel();
});
showModel();
"""

_STYLE = """
body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}
form{display:grid;grid-template-columns:1fr 14rem;gap:.4rem 1rem;align-items:center}
small{color:#555}#result{margin:1rem 0;padding:.8rem;white-space:pre-wrap}
.ok{background:#e8f6e8}.error{background:#fbe9e9}
table{border-collapse:collapse;margin:.4rem 0}td,th{border:1px solid #ccc;padding:.2rem .5rem}
"""


@lru_cache
def render_page(auth_enabled: bool) -> str:
    example = example_patient()
    fields = "\n".join(_input(f, example[f.name]) for f in SPEC.features)
    key_input = (
        '<label for="api_key"><b>API key</b> <small>sent as X-API-Key</small></label>'
        '<input id="api_key" type="password">'
        if auth_enabled
        else '<input id="api_key" type="hidden" value="">'
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(SPEC.display_name)} prediction</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>{_STYLE}</style></head>
<body><h1>{escape(SPEC.display_name)} prediction</h1>
<p>Enter one row's features; the current champion model answers.
API docs: <a href="docs">/docs</a>.</p>
<form id="patient">{fields}
{key_input}
<button id="submit" type="submit">Predict</button></form>
<div id="result" role="status"></div>
<h2>Model card</h2><div id="model">loading...</div>
<script>{_SCRIPT}</script></body></html>"""
