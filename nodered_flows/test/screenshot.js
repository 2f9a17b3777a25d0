// Opens a dashboard page in headless Chromium, waits until it shows `text`, does the
// steps given (fill a field by its label, click a button, wait for a text), saves a
// screenshot and prints the page's text:
//   node screenshot.js URL FILE TEXT ['[{"fill": "node id", "value": "..."}, {"click": "send"}, {"wait": "ok"}]']
"use strict";
const { chromium } = require("playwright-core");

async function main() {
  const [url, file, text, steps = "[]"] = process.argv.slice(2);
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: [
      "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    await page.goto(url);
    await page.getByText(text).first().waitFor({ timeout: 60000 });
    for (const step of JSON.parse(steps)) {
      if (step.fill) await page.getByLabel(step.fill, { exact: false }).first().fill(step.value);
      if (step.click) await page.getByRole("button", { name: step.click }).first().click();
      if (step.wait) await page.getByText(step.wait).first().waitFor({ timeout: 60000 });
    }
    await page.waitForTimeout(1500); // let the other widgets take their latest values
    await page.screenshot({ path: file, fullPage: true });
    process.stdout.write(await page.innerText("body"));
  } finally {
    await browser.close();
  }
}

main().catch((e) => {
  process.stderr.write(`${e.stack || e}\n`);
  process.exit(1);
});
