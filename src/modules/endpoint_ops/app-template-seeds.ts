import type { StoredAppFile } from './app-tables.js'

/**
 * The global templates every installation starts with. Each is inserted once, by its seed key, when
 * missing: a superuser's edit or deletion is never undone by a restart. Each passes the validator
 * with the default allow-list (a test holds them to it) and runs on the runner image as it is.
 */
export interface SeededAppTemplate {
  seedKey: string
  name: string
  description: string
  entry: string
  files: StoredAppFile[]
}

const HELLO_API = `"""A small JSON API: a greeting, the server's time and an echo of what you post."""
from datetime import datetime, timezone

from fastapi import FastAPI
from pydantic import BaseModel, Field

app = FastAPI(title="Hello API", version="1.0.0")


class Message(BaseModel):
    text: str = Field(min_length=1, max_length=500)
    shout: bool = False


@app.get("/")
def hello(name: str = "world"):
    return {"message": f"Hello, {name}!"}


@app.get("/time")
def server_time():
    return {"utc": datetime.now(timezone.utc).isoformat()}


@app.post("/echo")
def echo(message: Message):
    text = message.text.upper() if message.shout else message.text
    return {"text": text, "length": len(text)}
`

const FORM_MAIN = `"""A page with a guest-book form; the page's script posts entries as JSON and lists them.

The page and its style and script are files of the app: static/ is served at /static by the runner.
Entries live in memory and are gone when the app restarts or scales to zero.
"""
from datetime import datetime, timezone

from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field

from page import PAGE

app = FastAPI(title="Guest book")

entries = []


class Entry(BaseModel):
    name: str = Field(min_length=1, max_length=80)
    message: str = Field(min_length=1, max_length=1000)


@app.get("/", response_class=HTMLResponse)
def index():
    return PAGE


@app.get("/api/entries")
def list_entries():
    return list(reversed(entries[-50:]))


@app.post("/api/entries", status_code=201)
def add_entry(entry: Entry):
    saved = {"name": entry.name, "message": entry.message, "at": datetime.now(timezone.utc).isoformat()}
    entries.append(saved)
    del entries[:-500]
    return saved
`

const FORM_PAGE = `"""The page itself. Links are relative, so the page works under any path prefix."""

PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>Guest book</title>
  <link rel="stylesheet" href="static/style.css">
</head>
<body>
  <main>
    <h1>Guest book</h1>
    <form id="entry">
      <label>Name <input name="name" maxlength="80" required></label>
      <label>Message <textarea name="message" maxlength="1000" required></textarea></label>
      <button type="submit">Sign</button>
      <p id="error" role="alert"></p>
    </form>
    <ul id="entries"></ul>
  </main>
  <script src="static/app.js"></script>
</body>
</html>
"""
`

const FORM_CSS = `body { font-family: system-ui, sans-serif; margin: 0; background: #f6f7f9; color: #1d232b; }
main { max-width: 40rem; margin: 2rem auto; padding: 0 1rem; }
form { display: grid; gap: 0.75rem; background: #fff; padding: 1rem; border-radius: 8px; }
label { display: grid; gap: 0.25rem; font-weight: 600; }
input, textarea { font: inherit; padding: 0.5rem; border: 1px solid #c9ced6; border-radius: 4px; }
button { justify-self: start; padding: 0.5rem 1.25rem; border: 0; border-radius: 4px; background: #2456d3; color: #fff; }
#error { color: #b00020; min-height: 1em; margin: 0; }
#entries { list-style: none; padding: 0; }
#entries li { background: #fff; margin: 0.5rem 0; padding: 0.75rem 1rem; border-radius: 8px; }
#entries small { color: #5b6471; }
`

const FORM_JS = `// Posts the form as JSON and shows the newest entries. Text is set with textContent, never as HTML.
const form = document.getElementById('entry');
const list = document.getElementById('entries');
const error = document.getElementById('error');

async function load() {
  const response = await fetch('api/entries');
  const entries = await response.json();
  list.replaceChildren(...entries.map((e) => {
    const item = document.createElement('li');
    const who = document.createElement('strong');
    who.textContent = e.name;
    const when = document.createElement('small');
    when.textContent = ' ' + new Date(e.at).toLocaleString();
    const text = document.createElement('p');
    text.textContent = e.message;
    item.append(who, when, text);
    return item;
  }));
}

form.addEventListener('submit', async (event) => {
  event.preventDefault();
  error.textContent = '';
  const body = Object.fromEntries(new FormData(form));
  const response = await fetch('api/entries', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  if (!response.ok) {
    error.textContent = 'Could not sign: check the name and the message.';
    return;
  }
  form.reset();
  await load();
});

load();
`

const CRUD_MAIN = `"""A small CRUD API over items, with pydantic models for what comes in and what goes out.

The store is a dict in memory: it is emptied when the app restarts or scales to zero.
"""
from itertools import count
from typing import Optional

from fastapi import FastAPI, HTTPException, Response

from models import Item, ItemCreate, ItemUpdate

app = FastAPI(title="Items", version="1.0.0")

items = {}
next_id = count(1)


def find(item_id: int) -> Item:
    item = items.get(item_id)
    if item is None:
        raise HTTPException(status_code=404, detail="item not found")
    return item


@app.get("/items", response_model=list[Item])
def list_items(tag: Optional[str] = None, limit: int = 100):
    found = [i for i in items.values() if tag is None or tag in i.tags]
    return found[: max(1, min(limit, 1000))]


@app.post("/items", response_model=Item, status_code=201)
def create_item(body: ItemCreate):
    item = Item(id=next(next_id), **body.model_dump())
    items[item.id] = item
    return item


@app.get("/items/{item_id}", response_model=Item)
def get_item(item_id: int):
    return find(item_id)


@app.patch("/items/{item_id}", response_model=Item)
def update_item(item_id: int, body: ItemUpdate):
    item = find(item_id)
    changes = body.model_dump(exclude_unset=True)
    updated = item.model_copy(update=changes)
    items[item_id] = updated
    return updated


@app.delete("/items/{item_id}", status_code=204)
def delete_item(item_id: int):
    find(item_id)
    del items[item_id]
    return Response(status_code=204)
`

const CRUD_MODELS = `from decimal import Decimal
from typing import Optional

from pydantic import BaseModel, Field


class ItemCreate(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    price: Decimal = Field(ge=0, max_digits=10, decimal_places=2)
    tags: list[str] = Field(default_factory=list, max_length=10)


class ItemUpdate(BaseModel):
    name: Optional[str] = Field(default=None, min_length=1, max_length=100)
    price: Optional[Decimal] = Field(default=None, ge=0, max_digits=10, decimal_places=2)
    tags: Optional[list[str]] = Field(default=None, max_length=10)


class Item(ItemCreate):
    id: int
`

export const SEEDED_APP_TEMPLATES: readonly SeededAppTemplate[] = Object.freeze([
  {
    seedKey: 'hello-json-api',
    name: 'Hello JSON API',
    description: 'A greeting, the server time and a validated echo: the smallest useful FastAPI app, one file.',
    entry: 'main.py',
    files: [{ path: 'main.py', content: HELLO_API }],
  },
  {
    seedKey: 'form-and-static-page',
    name: 'Form and static page',
    description: 'A guest book: an HTML page with a form, its stylesheet and script served from static/, entries posted as JSON.',
    entry: 'main.py',
    files: [
      { path: 'main.py', content: FORM_MAIN },
      { path: 'page.py', content: FORM_PAGE },
      { path: 'static/app.js', content: FORM_JS },
      { path: 'static/style.css', content: FORM_CSS },
    ],
  },
  {
    seedKey: 'crud-pydantic',
    name: 'CRUD with pydantic models',
    description: 'Create, list, read, update and delete items, with pydantic models for input and output and 404s for missing items.',
    entry: 'main.py',
    files: [
      { path: 'main.py', content: CRUD_MAIN },
      { path: 'models.py', content: CRUD_MODELS },
    ],
  },
])
