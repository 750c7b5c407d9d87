// No browser: Playwright's test runner on plain tests. Fails while the state file says "down".
const fs = require("fs");
const { test, expect } = require("@playwright/test");

function status() {
  return fs.readFileSync(process.env.STATE_FILE, "utf8").trim() === "up" ? 200 : 503;
}

test.describe("cart (EU)", () => {
  test("adds 2+2 items [fast]", () => {
    expect(status(), "HTTP status").toBe(200);
  });
  test("shows the total", () => {
    expect(1 + 1).toBe(2);
  });
});

test("checkout pays by card?", () => {
  if (status() !== 200) throw new Error("Request failed with status code 503");
});

test("checkout pays by card", () => {
  expect(true).toBe(true);
});
