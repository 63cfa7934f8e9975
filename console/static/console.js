/* Subsidy console: draws the JSON API as inline SVG charts and tables. No libraries, no network
 * other than this server. Money arrives as decimal strings (and integer fen); text is formatted
 * from the strings, never through floating point. Only chart geometry uses numbers. */
"use strict";

const REFRESH_MS = 5000;
const SVG_NS = "http://www.w3.org/2000/svg";
const openDecisions = new Set();
let busy = false;
let whatif = { saved: false };  // /api/whatif: a policy change's comparison saved by `subsidy whatif --save`

// ---------------------------------------------------------------- helpers

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) if (c !== null && c !== undefined && c !== false) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

function svg(tag, attrs, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined) continue;
    if (k === "text") node.textContent = v;
    else node.setAttribute(k, String(v));
  }
  for (const c of children.flat()) if (c) node.append(c);
  return node;
}

function groupDigits(digits) {
  return digits.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
}

/** "4400000.00" -> "¥4,400,000.00" (string arithmetic only). */
function cny(decimal) {
  if (decimal === null || decimal === undefined) return "—";
  const text = String(decimal);
  const m = /^(-?)(\d+)(?:\.(\d{1,2}))?$/.exec(text);
  if (!m) return text;
  const cents = (m[3] || "").padEnd(2, "0");
  return `${m[1]}¥${groupDigits(m[2])}.${cents}`;
}

/** Compact axis label from fen (a number is fine for an axis tick). */
function cnyShort(fen) {
  const yuan = fen / 100;
  const abs = Math.abs(yuan);
  const trim = (x) => (Math.round(x * 100) / 100).toString();
  if (abs >= 1e8) return `¥${trim(yuan / 1e8)}亿`;
  if (abs >= 1e4) return `¥${groupDigits(trim(yuan / 1e4))}万`;
  return `¥${trim(yuan)}`;
}

/** A round axis step (1, 2 or 5 × 10^k fen, at least one yuan) near the given one. */
function niceStep(raw) {
  const minimum = 100;
  if (!(raw > minimum)) return minimum;
  const power = Math.pow(10, Math.floor(Math.log10(raw)));
  const f = raw / power;
  return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 2.5 ? 2.5 : f <= 5 ? 5 : 10) * power;
}

function int(n) {
  return n === null || n === undefined ? "—" : groupDigits(String(Math.round(n)));
}

function rate(n) {
  if (n === null || n === undefined) return "—";
  return n >= 100 ? int(n) : n.toFixed(n >= 10 ? 1 : 2);
}

function pct(r) {
  if (r === null || r === undefined) return "—";
  const tenths = Math.floor(r * 1000 + 1e-9) / 10;  // never round up to a cap that is not reached
  return r >= 0.999 && r < 1 ? "99.9%+" : `${tenths.toFixed(1)}%`;
}

// A time keeps the offset it came with: the ledger records in UTC, events carry their own
// (+08:00 in Chengdu), and a time shown without its zone reads as the other one.
function when(ts) {
  if (!ts) return "—";
  const parts = String(ts).match(/^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2})(?::\d{2}(?:\.\d+)?)?(Z|[+-]\d{2}:\d{2})?$/);
  if (!parts) return String(ts);
  const [, day, minute, offset] = parts;
  return offset ? `${day} ${minute} ${offset === "Z" ? "+00:00" : offset}` : `${day} ${minute}`;
}

// the browser's own offset, written as the ledger's times are (+08:00)
function localOffset(date) {
  const minutes = -date.getTimezoneOffset();
  const abs = Math.abs(minutes);
  return `${minutes < 0 ? "-" : "+"}${String(Math.floor(abs / 60)).padStart(2, "0")}:${String(abs % 60).padStart(2, "0")}`;
}

function dayIndex(iso, year) {
  const [y, m, d] = iso.split("-").map(Number);
  return (Date.UTC(y, m - 1, d) - Date.UTC(year, 0, 1)) / 86400000;
}

function clauseLabel(title, id, programme) {
  // several programmes run together (city, district): say whose clause it is
  return [el("span", { class: "zh", text: title || id }), " ", el("span", { class: "badge mono", text: id }),
          programme ? el("span", { class: "muted small mono", text: ` ${programme}` }) : null];
}

async function getJSON(path) {
  const response = await fetch(path, { headers: { Accept: "application/json" }, cache: "no-store" });
  let body = null;
  try { body = await response.json(); } catch (_) { body = null; }
  if (!response.ok) throw new Error((body && body.error) || `${path}: HTTP ${response.status}`);
  return body;
}

// ---------------------------------------------------------------- KPIs

function renderKpis(summary) {
  const box = document.getElementById("kpis");
  const outcomes = summary.decisions_by_outcome || {};
  const kpi = (label, value, sub) => el("div", { class: "kpi" }, el("div", { class: "label", text: label }), el("div", { class: "value", text: value }), sub ? el("div", { class: "sub", text: sub }) : null);
  box.replaceChildren(
    kpi("净批准 Net granted", cny(summary.net_granted), `paid ${cny(summary.paid)} · clawed back ${cny(summary.clawed_back)}`),
    kpi("决定 Decisions", int(summary.decisions), Object.entries(outcomes).map(([k, v]) => `${k} ${int(v)}`).join(" · ")),
    kpi("付款指令 Instructions", int(summary.payments + summary.clawbacks), `${int(summary.payments)} payments · ${int(summary.clawbacks)} clawbacks`),
    kpi("拒收 Rejections", int(summary.rejections), Object.entries(summary.rejections_by_topic || {}).map(([k, v]) => `${k} ${int(v)}`).join(" · ") || "none"),
    kpi("最近记录 Last recorded", when(summary.last_recorded_at), summary.ledger),
  );
  document.getElementById("policy").textContent = `${summary.policy.title} · ${summary.policy.policy_id} ${summary.policy.version}`;
}

// ---------------------------------------------------------------- burn-down charts

function keepWhatif(data) { whatif = data; }

// A saved what-if's figure for a budget: keyed by clause, or programme/clause when it compared several programmes.
function whatifOf(table, b) {
  if (!whatif.saved || !table) return undefined;
  const programme = (whatif.policies && whatif.policies.current && whatif.policies.current.policy_id) || "";
  const years = table[b.clause_id] || table[`${programme}/${b.clause_id}`];
  return years ? years[String(b.fiscal_year)] : undefined;
}

function burnChart(b, big) {
  const W = big ? 1000 : 440, H = big ? 300 : 170;
  const M = { l: big ? 78 : 62, r: big ? 120 : 16, t: 12, b: 24 };
  const year = b.fiscal_year;
  const days = dayIndex(`${year}-12-31`, year);
  const p = b.projection || {};
  const series = b.series || [];
  const last = series.length ? series[series.length - 1].granted_fen : 0;
  let projEnd = null;  // [day, fen]; drawn only against a budget
  if (b.budget_fen && p.status === "projected" && p.exhaustion_date && p.within_fiscal_year) projEnd = [dayIndex(p.exhaustion_date, year), b.budget_fen];
  else if (b.budget_fen && p.status === "projected" && p.year_end_granted_fen !== null && p.year_end_granted_fen !== undefined) projEnd = [days, p.year_end_granted_fen];
  let top = Math.max(1, b.budget_fen || 0, last, ...series.map((s) => s.granted_fen));
  if (projEnd) top = Math.max(top, projEnd[1]);
  const maxFen = top * 1.07;
  const step = niceStep(maxFen / 4);
  const x = (d) => M.l + (Math.max(0, Math.min(days, d)) / days) * (W - M.l - M.r);
  const y = (fen) => H - M.b - (Math.max(0, fen) / maxFen) * (H - M.t - M.b);

  const root = svg("svg", { class: `burn ${big ? "big" : "small"}`, viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": `${b.clause_id} ${year} burn-down`, "data-clause": b.clause_id, "data-year": year });
  // grid and axes
  for (let fen = 0; fen <= maxFen; fen += step) {
    root.append(svg("line", { class: "grid", x1: M.l, x2: W - M.r, y1: y(fen), y2: y(fen) }));
    root.append(svg("text", { class: "axis", x: M.l - 6, y: y(fen) + 4, "text-anchor": "end", text: cnyShort(fen) }));
  }
  const months = big ? [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12] : [1, 4, 7, 10];
  for (const m of months) {
    const d = dayIndex(`${year}-${String(m).padStart(2, "0")}-01`, year);
    root.append(svg("line", { class: "grid", x1: x(d), x2: x(d), y1: M.t, y2: H - M.b }));
    root.append(svg("text", { class: "axis", x: x(d) + 2, y: H - 8, text: `${m}月` }));
  }
  // today
  const asOf = p.as_of ? dayIndex(p.as_of, year) : null;
  // granted: step line through the daily cumulative values, extended to as_of
  if (series.length) {
    let d0 = dayIndex(series[0].date, year);
    let path = `M${x(d0).toFixed(1)},${y(0).toFixed(1)}`;
    let prev = 0;
    for (const s of series) {
      const d = dayIndex(s.date, year) + 1;  // value at the end of that day
      path += ` L${x(d - 1).toFixed(1)},${y(prev).toFixed(1)} L${x(d).toFixed(1)},${y(s.granted_fen).toFixed(1)}`;
      prev = s.granted_fen;
    }
    const endDay = Math.max(dayIndex(series[series.length - 1].date, year) + 1, asOf !== null ? asOf + 1 : 0);
    path += ` L${x(endDay).toFixed(1)},${y(prev).toFixed(1)}`;
    root.append(svg("path", { class: "area", d: `${path} L${x(endDay).toFixed(1)},${y(0).toFixed(1)} Z` }));
    root.append(svg("path", { class: "granted", d: path, "data-points": series.length }));
    // projection
    if (projEnd) {
      const from = [endDay, prev];
      root.append(svg("path", { class: "projection", d: `M${x(from[0]).toFixed(1)},${y(from[1]).toFixed(1)} L${x(projEnd[0]).toFixed(1)},${y(projEnd[1]).toFixed(1)}` }));
    }
  }
  if (asOf !== null && asOf >= 0 && asOf <= days) root.append(svg("line", { class: "today", x1: x(asOf + 1), x2: x(asOf + 1), y1: M.t, y2: H - M.b }));
  if (b.budget_fen) {
    root.append(svg("path", { class: "budget", d: `M${x(0)},${y(b.budget_fen).toFixed(1)} L${x(days + 1)},${y(b.budget_fen).toFixed(1)}` }));
    root.append(svg("text", { class: "label-budget", x: W - M.r + 4, y: y(b.budget_fen) + 4, text: `预算 ${cnyShort(b.budget_fen)}` }));
    if (p.exhaustion_date && (p.status === "exhausted" || p.within_fiscal_year)) {
      const d = dayIndex(p.exhaustion_date, year) + (p.status === "exhausted" ? 1 : 0);
      root.append(svg("circle", { class: `exhaust ${p.status === "exhausted" ? "done" : ""}`, cx: x(d), cy: y(b.budget_fen), r: 4.5 }));
      root.append(svg("text", { class: "label-proj", x: Math.min(x(d), W - M.r - 150), y: y(b.budget_fen) - 8, text: `${p.status === "exhausted" ? "用尽 exhausted" : "预计用尽 projected"} ${p.exhaustion_date}` }));
    }
    const whatifDay = whatifOf(whatif.exhaustion && whatif.exhaustion.new, b);
    if (whatifDay) {
      const d = dayIndex(whatifDay, year) + 1;
      root.append(svg("rect", { class: "whatif", x: x(d) - 4, y: y(b.budget_fen) - 4, width: 8, height: 8, transform: `rotate(45 ${x(d)} ${y(b.budget_fen)})` }));
      root.append(svg("text", { class: "label-whatif", x: Math.min(x(d), W - M.r - 150), y: y(b.budget_fen) + 16, text: `假设 what-if ${whatifDay}` }));
    }
  }
  return root;
}

function verdict(b) {
  const p = b.projection || {};
  if (!b.budget_fen) return el("div", { class: "verdict", text: "无总额预算 · no programme budget in the policy (per-payee caps only)" });
  if (p.status === "exhausted") return el("div", { class: "verdict bad", text: `预算已用尽 · budget ran out on ${p.exhaustion_date}${b.declined_by_budget ? ` · ${int(b.declined_by_budget)} claims declined or cut by it since` : ""}` });
  if (p.status === "projected" && p.within_fiscal_year) return el("div", { class: "verdict warn", text: `按近30天趋势 ${cny(p.slope_per_day)}/天，预计 ${p.exhaustion_date} 用尽 · projected to run out on ${p.exhaustion_date}` });
  if (p.status === "projected") return el("div", { class: "verdict ok", text: `按近30天趋势 ${cny(p.slope_per_day)}/天，本年度不会用尽 · lasts the year (trend reaches the budget on ${p.exhaustion_date || "—"})` });
  return el("div", { class: "verdict ok", text: "近30天无新增 · no spending in the last 30 days" });
}

// The saved what-if beside a budget: when it runs out under the new policy and under the current one, over the what-if's events.
function whatifLine(b) {
  const exhaustion = whatif.exhaustion || {};
  const after = whatifOf(exhaustion.new, b), before = whatifOf(exhaustion.current, b), change = whatifOf(whatif.diff, b);
  // a clause without a programme budget whose total the change leaves alone: nothing to say
  if (after === undefined && before === undefined && (change === undefined || /^-?0\.00$/.test(change))) return null;
  const policy = (whatif.policies && whatif.policies.new) || {};
  const day = (d) => (d ? `runs out ${d}` : d === null ? "lasts the year" : "—");
  return el("div", { class: "whatif-line", "data-clause": b.clause_id, "data-year": b.fiscal_year,
    text: `假设 what-if (${policy.version || "?"}, ${policy.file || "?"}, saved ${whatif.saved_at || "?"}): ${day(after)} · current policy on the same events: ${day(before)}${change !== undefined ? ` · granted ${change.startsWith("-") ? "" : "+"}${cny(change)}` : ""}` });
}

function renderBudgets(data) {
  const box = document.getElementById("budgets");
  const cards = [];
  for (const b of data.budgets) {
    const big = Boolean(b.budget_fen);
    const facts = el("div", { class: "facts" },
      el("span", {}, "已批准 granted ", el("b", { text: cny(b.granted) })),
      b.budget_fen ? el("span", {}, "预算 budget ", el("b", { text: cny(b.budget) })) : null,
      b.budget_fen ? el("span", {}, "剩余 remaining ", el("b", { text: cny(b.remaining) })) : null,
      b.budget_fen ? el("span", {}, "已用 used ", el("b", { text: pct(b.used_ratio) })) : null,
      ...(b.count_limits || []).map((c) => el("span", {}, `${c.cap} `, el("b", { text: `${c.used} / ${c.limit}` }))),
    );
    cards.push(el("div", { class: `chart-card ${big ? "main" : ""}` },
      el("h3", {}, clauseLabel(b.title, b.clause_id, b.programme), el("span", { class: "muted", text: `${b.fiscal_year} 财年` })),
      facts, burnChart(b, big), verdict(b), whatifLine(b),
      big ? el("div", { class: "legend" }, el("span", {}, el("i", { class: "l-granted" }), "已批准累计 granted"), el("span", {}, el("i", { class: "l-budget" }), "预算 budget"), el("span", {}, el("i", { class: "l-proj" }), "趋势预测 projection (30 d)")) : null,
    ));
  }
  box.replaceChildren(...(cards.length ? cards : [el("div", { class: "empty", text: "No payments in the ledger yet." })]));
}

// ---------------------------------------------------------------- caps

function renderCaps(data) {
  const box = document.getElementById("caps");
  if (!data.caps.length) { box.replaceChildren(el("div", { class: "empty", text: "No per-payee cap has been charged yet." })); return; }
  const W = 640, row = 42;
  const root = svg("svg", { class: "caps", viewBox: `0 0 ${W} ${data.caps.length * row + 4}`, role: "img", "aria-label": "payees nearest their caps" });
  data.caps.forEach((c, i) => {
    const top = i * row + 2;
    const who = (c.beneficiary && c.beneficiary.name) || c.who.join(" · ");
    const subject = c.per.includes("subject") ? c.who[c.who.length - 1] : null;
    const name = subject && subject !== who ? `${who} · ${subject}` : who;
    const value = c.kind === "amount" ? `${cny(c.used)} / ${cny(c.limit)}` : `${c.used_count} / ${c.limit_count}`;
    const g = svg("g", { class: "cap-row" });
    g.append(svg("title", { text: `${c.scope}\nroom left: ${c.kind === "amount" ? cny(c.room) : c.room_count}` }));
    g.append(svg("text", { class: "cap-name", x: 0, y: top + 12, text: name.length > 40 ? name.slice(0, 39) + "…" : name }));
    g.append(svg("text", { class: "cap-value", x: W, y: top + 12, "text-anchor": "end", text: `${value}  ${pct(c.used_ratio)}` }));
    g.append(svg("rect", { class: "cap-track", x: 0, y: top + 17, width: W, height: 9, rx: 3 }));
    const w = Math.max(2, Math.min(1, c.used_ratio) * W);
    g.append(svg("rect", { class: `cap-bar ${c.used_ratio >= 1 ? "full" : c.used_ratio >= 0.8 ? "warn" : ""}`, x: 0, y: top + 17, width: w.toFixed(1), height: 9, rx: 3 }));
    g.append(svg("text", { class: "cap-meta", x: 0, y: top + 38, text: `${c.title || c.clause_id} (${c.clause_id}) · ${c.cap} · ${c.period}` }));
    root.append(g);
  });
  box.replaceChildren(root, el("div", { class: "muted small", text: `${int(data.caps_tracked)} per-payee / per-subject money caps tracked` }));
}

// ---------------------------------------------------------------- streams

function renderStreams(data) {
  const box = document.getElementById("streams");
  const parts = [];
  if (data.explanation) parts.push(el("div", { class: "empty", text: data.explanation }));
  if (data.workers.length) {
    parts.push(el("div", { class: "small" }, ...data.workers.map((w) => el("div", {}, el("span", { class: `dot ${w.up ? "ok" : "bad"}` }), " ", el("span", { class: "mono", text: w.url }), w.error ? el("span", { class: "muted", text: ` — ${w.error}` }) : null))));
  }
  if (data.topics.length) {
    parts.push(el("table", {},
      el("thead", {}, el("tr", {}, el("th", { text: "topic" }), el("th", { class: "num", text: "in total" }), el("th", { class: "num", text: "in /s" }), el("th", { class: "num", text: "out /s" }), el("th", { class: "num", text: "lag" }))),
      el("tbody", {}, ...data.topics.map((t) => el("tr", {},
        el("td", { class: "mono", text: t.topic }),
        el("td", { class: "num", text: int(t.events_in_total) }),
        el("td", { class: "num", text: rate(t.events_in_per_second) }),
        el("td", { class: "num", text: rate(t.events_out_per_second) }),
        el("td", { class: "num", text: t.lag === null ? "—" : int(t.lag) }),
      ))),
    ));
  }
  box.replaceChildren(...parts);
}

// ---------------------------------------------------------------- rejections

function renderRejections(data) {
  const box = document.getElementById("rejections");
  if (!data.groups.length) { box.replaceChildren(el("div", { class: "empty", text: "No rejected input. 无拒收" })); return; }
  const max = Math.max(...data.groups.map((g) => g.count));
  box.replaceChildren(...data.groups.map((g) => {
    const bar = svg("svg", { class: "rej-svg", viewBox: "0 0 200 8", width: 200, height: 8 }, svg("rect", { x: 0, y: 0, width: 200, height: 8, rx: 3, fill: "#fee2e2" }), svg("rect", { class: "rej-bar-fill", x: 0, y: 0, width: Math.max(2, (g.count / max) * 200).toFixed(1), height: 8, rx: 3, fill: "#b91c1c" }));
    return el("div", { class: "rej-group", "data-code": g.code },
      el("div", { class: "rej-head" },
        el("span", { class: "count", text: int(g.count) }), el("span", { class: "code mono", text: g.code }), bar,
        el("span", { class: "muted small", text: Object.entries(g.by_topic).map(([k, v]) => `${k} ${int(v)}`).join(" · ") }),
      ),
      ...g.examples.map((e) => el("div", { class: "rej-example" },
        el("div", { class: "reason", text: e.reason }),
        el("div", { class: "muted small mono", text: `${e.topic} · partition ${e.partition ?? "—"} · offset ${e.offset ?? "—"} · key ${e.key ?? "—"} · ${when(e.rejected_at || e.recorded_at)}` }),
        el("pre", { class: "original", text: e.original_text !== null && e.original_text !== undefined ? e.original_text + (e.original_truncated ? " …" : "") : `(not UTF-8; base64) ${e.original_base64 || ""}` }),
      )),
    );
  }));
}

// ---------------------------------------------------------------- held payments

function renderHeldPayments(data) {
  const box = document.getElementById("held-payments");
  if (!data.holds.length) { box.replaceChildren(el("div", { class: "empty", text: "No payment held. 无暂缓支付" })); return; }
  box.replaceChildren(el("table", {},
    el("thead", {}, el("tr", {}, ...["收款方 payee", "金额 amount", "名单 listing", "自 held from", "可付 payable from"].map((h) => el("th", { class: h.startsWith("金额") ? "num" : "", text: h })))),
    el("tbody", {}, ...data.holds.map((h) => el("tr", { "data-instruction": h.instruction_id },
      el("td", {}, h.payee_name || h.payee_id, el("div", { class: "muted small mono", text: h.payee_id })),
      el("td", { class: "num", text: cny(h.amount) }),
      el("td", {}, el("span", { class: "badge", text: h.listing.list }), ` ${h.listing.reference}`,
        el("div", { class: "muted small", text: `${h.listing.listed_party} · ${h.listing.from || "?"} – ${h.listing.to || "no end yet"}` })),
      el("td", { class: "mono", text: h.held_from }),
      el("td", { class: "mono", text: h.payable_from || "—" }),
    ))),
  ), el("div", { class: "muted small", text: `${int(data.count)} held, ${cny(data.total)} in all, as of ${data.as_of}` }));
}

// ---------------------------------------------------------------- ledger integrity

function renderIntegrity(data) {
  const box = document.getElementById("ledger-integrity");
  const state = data.verified === true ? ["ok", "verifies 校验通过"] : data.verified === false ? ["bad", "does NOT verify 校验失败"] : ["", "not checked 未校验"];
  const cp = data.checkpoint;
  box.replaceChildren(
    el("div", {}, el("span", { class: `badge ${state[0]}`, text: state[1] }),
      cp ? ` checkpoint seq ${cp.seq} · ${int(cp.entries)} entries · ${cp.time} · key ${cp.key_id}` : ""),
    cp ? el("div", { class: "muted small mono", text: cp.head_hash }) : "",
    ...[...data.problems, ...data.notes].map((line) => el("div", { class: "small", text: line })),
  );
}

// ---------------------------------------------------------------- payments

function table(headers, rows) {
  return el("table", {}, el("thead", {}, el("tr", {}, ...headers.map((h) => el("th", { class: h.startsWith("金额") ? "num" : "", text: h })))), el("tbody", {}, ...rows));
}

function renderPayments(data) {
  const box = document.getElementById("payments");
  const parts = [el("div", { class: "small", id: "payments-summary", text:
    `${int(data.awaiting_approval)} batch(es) awaiting approval · ${int(data.awaiting_account.payments)} payment(s) awaiting an account, ${cny(data.awaiting_account.total)} · owed back ${cny(data.receivables.total)} · as of ${data.as_of}` })];
  if (data.batches.length) {
    // the API refuses anyone else; the button is only not offered to them
    const approver = operatorRole === "checker" || operatorRole === "admin";
    const headers = ["批次 batch", "状态 state", "提出 proposed by", "批准 approved by", "笔数 payments", "金额 amount", ...(approver ? [""] : [])];
    parts.push(table(headers, data.batches.map((b) => el("tr", { "data-batch": b.batch_id },
      el("td", { class: "mono", text: b.batch_id }), el("td", {}, el("span", { class: "badge", text: b.status })),
      el("td", { text: `${b.maker} · ${when(b.proposed_at)}` }), el("td", { text: `${b.approvers.join(", ") || "—"} (${b.approvers.length}/${b.approvals_required})` }),
      el("td", { class: "num", text: int(b.payments) }), el("td", { class: "num", text: cny(b.control_sum) }),
      approver ? el("td", {}, b.status === "proposed" ? el("button", { type: "button", class: "approve", "data-approve": b.batch_id, text: "批准 Approve", onclick: () => approve(b.batch_id) }) : null) : null))));
  } else parts.push(el("div", { class: "empty", text: "No batch proposed yet. 无批次" }));
  if (data.states.length) parts.push(el("div", { class: "muted small", text: "payments: " + data.states.map((s) => `${s.state} ${int(s.payments)} (${cny(s.amount)})`).join(" · ") }));
  if (data.awaiting_account.payees.length) {
    parts.push(el("h3", { text: "待账户 Awaiting an account" }), table(["收款方 payee", "笔数 payments", "金额 amount"], data.awaiting_account.payees.map((a) => el("tr", {},
      el("td", {}, a.payee_name || a.payee_id, el("div", { class: "muted small mono", text: a.payee_id })), el("td", { class: "num", text: int(a.payments) }), el("td", { class: "num", text: cny(a.amount) })))));
  }
  if (data.bank_refusals.length) {
    parts.push(el("h3", { text: "退回 Rejected and returned" }), table(["指令 instruction", "批次 batch", "状态 state", "原因 reason", "金额 amount"], data.bank_refusals.map((r) => el("tr", {},
      el("td", { class: "mono", text: r.instruction_id }), el("td", { class: "mono", text: r.batch_id }), el("td", { text: `${r.status} · ${when(r.at)}` }),
      el("td", { class: "mono", text: r.reason_code || "—" }), el("td", { class: "num", text: cny(r.amount) })))));
  }
  if (data.receivables.payees.length) {
    const buckets = Object.keys(data.receivables.buckets);
    parts.push(el("h3", { text: "应收 Owed back (aged, days)" }), table(["收款方 payee", "自 since", "金额 owed", ...buckets], data.receivables.payees.map((p) => el("tr", { "data-receivable": p.payee_id },
      el("td", {}, p.payee_name, el("div", { class: "muted small mono", text: p.payee_id })), el("td", { class: "mono", text: p.since }), el("td", { class: "num", text: cny(p.owed) }),
      ...buckets.map((k) => el("td", { class: "num", text: cny(p.buckets[k]) }))))));
  }
  box.replaceChildren(...parts);
}

async function showStatement() {
  const box = document.getElementById("statement");
  const payee = document.getElementById("statement-payee").value.trim();
  try {
    const data = await getJSON(`/api/payee-payments?payee_id=${encodeURIComponent(payee)}`);
    box.replaceChildren(el("div", { class: "small", text: `${data.payee_name} · ${data.has_account ? "account verified" : "no verified account"} · owes back ${cny(data.owed_back)}` }),
      table(["指令 instruction", "条款 clause", "日期 date", "金额 amount", "状态 where it stands"], data.instructions.map((i) => el("tr", { "data-instruction": i.instruction_id },
        el("td", { class: "mono", text: `${i.instruction_id} ${i.kind}` }), el("td", { text: `${i.clause_id} ${i.fiscal_year}` }), el("td", { class: "mono", text: i.value_date }),
        el("td", { class: "num", text: cny(i.amount) }),
        el("td", { class: "payment-state" }, el("span", { class: "badge", text: i.state }), i.batch_id ? ` ${i.batch_id}` : "", i.netted_fen ? el("div", { class: "muted small", text: `netted ${cny(i.netted)}` }) : null)))));
  } catch (e) {
    box.replaceChildren(el("div", { class: "empty", text: e.message }));
  }
}

// ---------------------------------------------------------------- decisions

const MONEY_RE = /^-?\d+\.\d{2}$/;

function computationView(c) {
  if (!c || typeof c !== "object") return el("div", { class: "empty", text: "no computation" });
  const parts = [];
  if (c.base !== undefined && c.rate !== undefined && c.rate !== null) parts.push(el("div", { class: "formula" }, `base ${cny(c.base)} × rate ${c.rate} = raw entitlement ${cny(c.raw_entitlement)} → granted `, el("b", { text: cny(c.granted) })));
  else if (c.raw_entitlement !== undefined) parts.push(el("div", { class: "formula" }, `entitlement ${cny(c.raw_entitlement)}${c.grade ? ` (grade ${c.grade})` : ""} → granted `, el("b", { text: cny(c.granted) })));
  const scalars = Object.entries(c).filter(([, v]) => v !== null && typeof v !== "object");
  if (scalars.length) parts.push(el("div", { class: "small" }, ...scalars.map(([k, v]) => el("span", { class: "badge", text: `${k}: ${typeof v === "string" && MONEY_RE.test(v) && k !== "rate" ? cny(v) : v}` }), " ")));
  if (Array.isArray(c.caps) && c.caps.length) {
    parts.push(el("table", {},
      el("thead", {}, el("tr", {}, ...["cap", "kind", "limit", "used before", "room before", "after this"].map((h) => el("th", { class: h === "cap" || h === "kind" ? "" : "num", text: h })))),
      el("tbody", {}, ...c.caps.map((s) => {
        const f = (v) => (s.kind === "amount" ? cny(v) : v);
        return el("tr", {}, el("td", { class: "mono", text: s.cap }), el("td", { text: s.kind }), el("td", { class: "num", text: f(s.limit) }), el("td", { class: "num", text: f(s.used_before) }), el("td", { class: "num", text: f(s.room_before) }), el("td", { class: "num", text: f(s.granted_after) }));
      })),
    ));
  }
  if (Array.isArray(c.caps_released) && c.caps_released.length) parts.push(el("div", { class: "small mono", text: `caps released: ${c.caps_released.join(", ")}` }));
  return el("div", { class: "computation" }, ...parts);
}

function renderDecisions(data) {
  const box = document.getElementById("decisions");
  if (!data.decisions.length) { box.replaceChildren(el("div", { class: "empty", text: "No decisions yet." })); return; }
  const rows = [];
  for (const d of data.decisions) {
    const isOpen = openDecisions.has(d.decision_id);
    const payee = d.payee || {}, ben = d.beneficiary || {};
    const toggle = () => { if (openDecisions.has(d.decision_id)) openDecisions.delete(d.decision_id); else openDecisions.add(d.decision_id); renderDecisions(data); };
    rows.push(el("tr", { class: `clickable ${isOpen ? "open" : ""}`, "data-decision": d.decision_id, onclick: toggle, title: "show the computation" },
      el("td", { class: "mono", text: when(d.occurred_at) }),
      el("td", {}, clauseLabel(d.clause_title, d.clause_id, d.policy_id)),
      el("td", {}, el("span", { class: `outcome ${d.outcome}`, text: d.outcome })),
      el("td", {}, ben.name || ben.id || "—", payee.id && payee.id !== ben.id ? el("div", { class: "muted small", text: `paid to ${payee.name || payee.id}` }) : null),
      el("td", { class: "num", text: cny(d.granted) }),
      el("td", { class: "small" }, d.declined_by ? el("span", { class: "badge", text: `${d.declined_by} −${cny(d.declined)}` }) : null, d.reason ? ` ${d.reason}` : ""),
    ));
    if (isOpen) rows.push(el("tr", { class: "open" }, el("td", { colspan: 6 }, el("div", { class: "muted small mono", text: `decision ${d.decision_id} · event ${d.source}/${d.event_id} · instruction ${d.instruction_id || "—"} · ${d.policy_id} ${d.policy_version}` }), computationView(d.computation))));
  }
  box.replaceChildren(el("table", {},
    el("thead", {}, el("tr", {}, ...["时间 occurred", "条款 clause", "结果 outcome", "受益方 beneficiary", "批准 granted", "说明 reason"].map((h) => el("th", { class: h.startsWith("批准") ? "num" : "", text: h })))),
    el("tbody", {}, ...rows),
  ), el("div", { class: "muted small", text: "Click a row for its computation." }));
}

// ---------------------------------------------------------------- operators: session, holds

let csrf = null;
let operatorRole = null;

async function startSession() {
  const session = await getJSON("/api/session");
  if (session.login_required && !session.name) {
    window.location.assign("/login");
    return false;
  }
  csrf = session.csrf;
  operatorRole = session.role;
  document.getElementById("hold-form").hidden = !session.name;
  const badge = document.getElementById("operator");
  if (session.name) {
    badge.textContent = `${session.name} · ${session.role}`;
    badge.dataset.role = session.role;
    document.getElementById("logout").hidden = false;
  }
  return true;
}

async function postJSON(path, body) {
  const headers = { "Content-Type": "application/json", Accept: "application/json" };
  if (csrf) headers["X-CSRF-Token"] = csrf;
  const response = await fetch(path, { method: "POST", headers, body: JSON.stringify(body), cache: "no-store" });
  let answer = null;
  try { answer = await response.json(); } catch (_) { answer = null; }
  return { status: response.status, answer };
}

async function act(path, verb) {
  const payee = document.getElementById("hold-payee").value.trim();
  const reason = document.getElementById("hold-reason").value.trim();
  const result = document.getElementById("action-result");
  const { status, answer } = await postJSON(path, { payee_id: payee, reason });
  showResult(result, status, status === 200 ? `${verb} ${answer.payee_id}: by ${answer.by} at ${when(answer.at)}` : answer && answer.error);
  if (status === 200) refresh();
}

function showResult(result, status, text) {
  result.className = `small ${status === 200 ? "done" : "refused"}`;
  result.textContent = status === 200 ? text : `refused (${status}): ${text || "no reason given"}`;
  result.dataset.status = String(status);
}

async function approve(batchId) {
  const { status, answer } = await postJSON(`/api/batches/${encodeURIComponent(batchId)}/approve`, {});
  showResult(document.getElementById("approval-result"), status, status === 200
    ? `approved ${answer.batch_id}: by ${answer.by}, ${answer.approvers.length} of ${answer.approvals_required} approval(s), ${answer.status}`
    : answer && answer.error);
  if (status === 200) refresh();
}

function renderHolds(data) {
  const box = document.getElementById("holds");
  if (!data.holds.length) {
    box.replaceChildren(el("p", { class: "muted small", text: "No payee is on hold." }));
    return;
  }
  const rows = data.holds.map((h) => el("tr", { "data-hold": h.payee_id },
    el("td", { class: "mono", text: h.payee_id }), el("td", { text: h.placed_by }), el("td", { text: when(h.placed_at) }), el("td", { text: h.reason })));
  box.replaceChildren(el("table", {}, el("thead", {}, el("tr", {}, ...["payee", "held by", "since", "reason"].map((t) => el("th", { text: t })))), el("tbody", {}, ...rows)));
}

// ---------------------------------------------------------------- refresh loop

async function refresh() {
  if (busy) return;
  busy = true;
  const live = document.getElementById("live");
  const banner = document.getElementById("error");
  const tasks = [
    ["/api/summary", renderKpis],
    ["/api/whatif", keepWhatif],  // before the budgets: they show it
    ["/api/budgets", renderBudgets],
    ["/api/caps/nearest?limit=12", renderCaps],
    ["/api/streams", renderStreams],
    ["/api/rejections?examples=2", renderRejections],
    ["/api/held-payments?limit=50", renderHeldPayments],
    ["/api/ledger-integrity", renderIntegrity],
    ["/api/payments?limit=20", renderPayments],
    ["/api/decisions/recent?limit=25", renderDecisions],
    ["/api/holds", renderHolds],
  ];
  const results = await Promise.allSettled(tasks.map(([path]) => getJSON(path)));
  const errors = [];
  results.forEach((r, i) => {
    if (r.status === "fulfilled") {
      try { tasks[i][1](r.value); } catch (e) { errors.push(`${tasks[i][0]}: ${e.message}`); }
    } else errors.push(r.reason.message);
  });
  banner.hidden = errors.length === 0;
  banner.textContent = errors.length ? `Cannot refresh: ${[...new Set(errors)].join(" · ")}` : "";
  live.className = `dot ${errors.length ? "bad" : "ok"}`;
  document.getElementById("updated").textContent = `updated ${new Date().toLocaleTimeString("zh-CN", { hour12: false })} ${localOffset(new Date())} · every ${REFRESH_MS / 1000} s`;
  document.body.dataset.loaded = String((Number(document.body.dataset.loaded) || 0) + 1);
  busy = false;
}

document.addEventListener("DOMContentLoaded", async () => {
  try {
    if (!(await startSession())) return;
  } catch (e) {
    const banner = document.getElementById("error");
    banner.hidden = false;
    banner.textContent = `Cannot start: ${e.message}`;
  }
  document.getElementById("hold-form").addEventListener("submit", (event) => { event.preventDefault(); act("/api/holds", "held"); });
  document.getElementById("hold-release").addEventListener("click", () => act("/api/holds/release", "released"));
  document.getElementById("statement-form").addEventListener("submit", (event) => { event.preventDefault(); showStatement(); });
  document.getElementById("logout").addEventListener("click", async () => { await postJSON("/api/logout", {}); window.location.assign("/login"); });
  refresh();
  setInterval(refresh, REFRESH_MS);
});
