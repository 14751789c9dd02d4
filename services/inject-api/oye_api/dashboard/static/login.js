// The login page: POST /login with the user name and password, then go to the dashboard.
const form = document.getElementById("login-form");
const error = document.getElementById("login-error");

function show(message) {
  error.textContent = message;
  error.hidden = !message;
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const button = form.querySelector("button");
  button.disabled = true;
  show("");
  try {
    const response = await fetch("/login", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      credentials: "same-origin",
      body: JSON.stringify({
        username: form.username.value.trim(),
        password: form.password.value,
      }),
    });
    if (response.status === 204) {
      location.replace("/");
      return;
    }
    if (response.status === 401) {
      show("Wrong user name or password.");
    } else if (response.status === 429) {
      const wait = response.headers.get("Retry-After");
      show(`Too many failed logins from here. Try again in ${wait || "a few"} seconds.`);
    } else if (response.status === 422) {
      show("Enter a user name and a password.");
    } else {
      show(`The proxy answered ${response.status}. Try again.`);
    }
    form.password.select();
  } catch {
    show("The proxy cannot be reached.");
  } finally {
    button.disabled = false;
  }
});
