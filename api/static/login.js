"use strict";

EH.init().then(() => {
  document.getElementById("login").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    EH.clearError();
    const f = new FormData(ev.target);
    try {
      const tok = await EH.api("/auth/token", {
        method: "POST", body: { username: f.get("username"), password: f.get("password") },
      });
      sessionStorage.setItem("eh_token", tok.access_token);
      const next = new URLSearchParams(location.search).get("next") || "";
      // only a page of this site: no open redirect
      const safe = /^\/web\/(customer|console|manager|fleet)(\?[^#]*)?$/.test(next) ? next : null;
      location.href = safe || "/web/" + EH.homeOf(tok.role) + "?lang=" + EH.lang;
    } catch (err) {
      EH.showError(err);
    }
  });
  document.body.dataset.ready = "1";   // the form is wired: a submit now signs in (tests wait for this)
});
