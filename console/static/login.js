"use strict";
// Log in with JSON (the console refuses a login sent any other way: a cross-site form cannot send JSON)
document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("login").addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = { name: document.getElementById("name").value, password: document.getElementById("password").value };
    const response = await fetch("/api/login", { method: "POST", headers: { "Content-Type": "application/json", Accept: "application/json" }, body: JSON.stringify(body), cache: "no-store" });
    if (response.ok) {
      window.location.assign("/");
      return;
    }
    let answer = null;
    try { answer = await response.json(); } catch (_) { answer = null; }
    document.getElementById("login-error").textContent = (answer && answer.error) || `HTTP ${response.status}`;
  });
});
