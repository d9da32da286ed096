/**
 * The rules that judge one Python file, written in Python and run by CPython's own `ast` inside
 * pyodide (checker-worker.ts). Kept here as text so that the file ships with the compiled code
 * like any other module (the build copies only .ts files).
 *
 * `check(request_json)` takes {path, source, entry, allowed, local} and answers a JSON list of
 * problems {line, column, rule, message}; lines and columns are 1-based and columns count
 * characters (the AST counts UTF-8 bytes), so an editor puts the cursor where the problem is.
 *
 * Every walk is iterative: an input nested 50,000 levels deep (which CPython's parser accepts for
 * some expressions) must not exhaust Python's recursion limit in our own code.
 */
export const CHECKER_PY = String.raw`
import ast
import json
import sys
import warnings

# Builtins that run text as code, reach the file system or the interpreter's state.
FORBIDDEN_CALLS = frozenset({
    'eval', 'exec', 'compile', 'open', '__import__', 'input', 'breakpoint',
    'globals', 'locals', 'vars',
})
# Names refused wherever they appear (read, written or called).
FORBIDDEN_NAMES = frozenset({'__builtins__', '__loader__', '__spec__', '__build_class__', 'importlib'})
# Attributes that walk from an object to the interpreter's internals or start processes.
FORBIDDEN_ATTRIBUTES = frozenset({
    '__builtins__', '__globals__', '__subclasses__', '__mro__', '__bases__', '__base__',
    '__code__', '__closure__', '__import__', '__loader__', '__spec__', '__self__',
    'f_globals', 'f_locals', 'f_builtins', 'f_back', 'f_code',
    'gi_frame', 'gi_code', 'cr_frame', 'cr_code', 'ag_frame', 'ag_code', 'tb_frame',
    'create_subprocess_exec', 'create_subprocess_shell', 'subprocess_exec', 'subprocess_shell',
})
ATTRIBUTE_FUNCTIONS = frozenset({'getattr', 'setattr', 'delattr', 'hasattr'})
# Dunders of a module that tell about it without reaching into its namespace.
HARMLESS_MODULE_DUNDERS = frozenset({'__name__', '__version__', '__doc__', '__all__', '__file__'})
FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef)
COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)
MAX_PROBLEMS = 100


class Checker:
    def __init__(self, path, source, entry, allowed, local):
        self.path = path
        self.source = source
        self.entry = entry
        self.local = frozenset(local)
        self.exact = frozenset(a for a in allowed if not a.endswith('.*'))
        self.wildcard = frozenset(a[:-2] for a in allowed if a.endswith('.*'))
        self.lines = source.encode('utf-8', 'surrogatepass').splitlines()
        self.problems = []
        # Names bound by "import a.b" whose first part a is no allowed module: a.x must be allowed in full.
        self.partial_imports = {}
        # Names bound at module level to an imported module that is not the user's own.
        self.modules = {}
        self.called = set()
        self.attribute_bases = set()

    # -- positions and problems -------------------------------------------------------------

    def column(self, lineno, byte_offset):
        if lineno is None or byte_offset is None:
            return 0
        if 0 < lineno <= len(self.lines):
            return len(self.lines[lineno - 1][:byte_offset].decode('utf-8', 'replace')) + 1
        return byte_offset + 1

    def add(self, node, rule, message):
        line = getattr(node, 'lineno', 0) or 0
        self.problems.append({
            'line': line,
            'column': self.column(line, getattr(node, 'col_offset', None)) if line else 0,
            'rule': rule,
            'message': message,
        })

    def add_at_name(self, node, rule, message):
        """A problem shown at an attribute's name (x.y.__mro__ points at __mro__, not at x)."""
        line, end = node.end_lineno, node.end_col_offset
        if line is None or end is None or getattr(node, 'from_string', False):
            return self.add(node, rule, message)
        self.problems.append({
            'line': line,
            'column': self.column(line, end - len(node.attr.encode('utf-8'))),
            'rule': rule,
            'message': message,
        })

    # -- imports -------------------------------------------------------------------------------

    def allowed(self, dotted):
        parts = dotted.split('.')
        if parts[0] in self.local or dotted in self.exact:
            return True
        return any('.'.join(parts[:i]) in self.wildcard for i in range(1, len(parts) + 1))

    def check_import(self, node, at_module_level):
        for alias in node.names:
            name = alias.name
            if not self.allowed(name):
                self.add(alias, 'import', 'import of "%s" is not allowed (not on the allow-list)' % name)
                continue
            if alias.asname:
                bound, module = alias.asname, name
            else:
                bound, module = name.split('.')[0], name.split('.')[0]
                if '.' in name and not self.allowed(module):
                    self.partial_imports.setdefault(bound, set()).add(name)
            if at_module_level and module.split('.')[0] not in self.local:
                self.modules[bound] = module

    def check_import_from(self, node, at_module_level):
        if node.level:
            return  # relative: the user's own modules, checked as files of their own
        module = node.module or ''
        if module == '__future__':
            return
        local = module.split('.')[0] in self.local
        for alias in node.names:
            name = alias.name
            if name == '*':
                if not self.allowed(module):
                    self.add(alias, 'import', 'import from "%s" is not allowed (not on the allow-list)' % module)
                continue
            if not (self.allowed(module) or self.allowed(module + '.' + name)):
                shown = '%s as %s' % (name, alias.asname) if alias.asname else name
                self.add(alias, 'import', 'import of "%s" from "%s" is not allowed (not on the allow-list)' % (shown, module))
                continue
            if name.startswith('_') and not local:
                self.add(alias, 'import', '"%s" is a private name of "%s" and may not be imported' % (name, module))
                continue
            if at_module_level and not local and self.allowed(module + '.' + name) and not self.allowed(module):
                self.modules[alias.asname or name] = module + '.' + name

    # -- scopes --------------------------------------------------------------------------------

    @staticmethod
    def bindings(scope):
        """Names a scope binds itself (parameters, assignments, imports, definitions...)."""
        names, declared_elsewhere = set(), set()
        if isinstance(scope, FUNCTIONS + (ast.Lambda,)):
            a = scope.args
            for arg in (*a.posonlyargs, *a.args, *a.kwonlyargs, a.vararg, a.kwarg):
                if arg is not None:
                    names.add(arg.arg)
            stack = list(scope.body) if isinstance(scope.body, list) else [scope.body]
        elif isinstance(scope, COMPREHENSIONS):
            stack = [g.target for g in scope.generators]
        else:
            stack = list(scope.body)
        while stack:
            node = stack.pop()
            if isinstance(node, ast.Name):
                if not isinstance(node.ctx, ast.Load):
                    names.add(node.id)
                continue
            if isinstance(node, FUNCTIONS + (ast.ClassDef,)):
                names.add(node.name)
                stack.extend(node.decorator_list)
                if isinstance(node, ast.ClassDef):
                    stack.extend(node.bases)
                    stack.extend(k.value for k in node.keywords)
                else:
                    stack.extend(node.args.defaults)
                    stack.extend(d for d in node.args.kw_defaults if d is not None)
                continue
            if isinstance(node, ast.Lambda):
                stack.extend(node.args.defaults)
                stack.extend(d for d in node.args.kw_defaults if d is not None)
                continue
            if isinstance(node, COMPREHENSIONS):
                # Only an assignment expression's target leaves a comprehension.
                for sub in ast.walk(node):
                    if isinstance(sub, ast.NamedExpr) and isinstance(sub.target, ast.Name):
                        names.add(sub.target.id)
                continue
            if isinstance(node, ast.alias):
                if node.name != '*':
                    names.add(node.asname or node.name.split('.')[0])
                continue
            if isinstance(node, (ast.Global, ast.Nonlocal)):
                declared_elsewhere.update(node.names)
                continue
            if isinstance(node, ast.ExceptHandler) and node.name:
                names.add(node.name)
            elif isinstance(node, (ast.MatchAs, ast.MatchStar)) and node.name:
                names.add(node.name)
            elif isinstance(node, ast.MatchMapping) and node.rest:
                names.add(node.rest)
            stack.extend(ast.iter_child_nodes(node))
        return frozenset(names - declared_elsewhere)

    @staticmethod
    def is_bound(env, name):
        return any(name in names for names, _ in env)

    @staticmethod
    def without_classes(env):
        # A class body's names are not visible inside the functions and comprehensions it holds.
        return tuple(e for e in env if not e[1])

    def children(self, node, env):
        """(child, env) pairs: what a definition evaluates outside and inside its own scope."""
        if isinstance(node, FUNCTIONS + (ast.Lambda,)):
            a = node.args
            outside = [*a.defaults, *(d for d in a.kw_defaults if d is not None)]
            if isinstance(node, FUNCTIONS):
                outside += node.decorator_list
                if node.returns is not None:
                    outside.append(node.returns)
                for arg in (*a.posonlyargs, *a.args, *a.kwonlyargs, a.vararg, a.kwarg):
                    if arg is not None and arg.annotation is not None:
                        outside.append(arg.annotation)
            inner = self.without_classes(env) + ((self.bindings(node), False),)
            body = node.body if isinstance(node.body, list) else [node.body]
            return [(c, env) for c in outside] + [(c, inner) for c in body]
        if isinstance(node, ast.ClassDef):
            outside = [*node.decorator_list, *node.bases, *(k.value for k in node.keywords)]
            inner = env + ((self.bindings(node), True),)
            return [(c, env) for c in outside] + [(c, inner) for c in node.body]
        if isinstance(node, COMPREHENSIONS):
            inner = self.without_classes(env) + ((self.bindings(node), False),)
            first, *rest = node.generators
            pairs = [(first.iter, env), (first.target, inner)] + [(c, inner) for c in first.ifs]
            for g in rest:
                pairs += [(g.target, inner), (g.iter, inner)] + [(c, inner) for c in g.ifs]
            parts = [node.key, node.value] if isinstance(node, ast.DictComp) else [node.elt]
            return pairs + [(c, inner) for c in parts]
        return [(c, env) for c in ast.iter_child_nodes(node)]

    # -- rules on names, attributes and calls ---------------------------------------------------

    def check_name(self, node, env):
        if node.id in self.partial_imports and id(node) not in self.attribute_bases and not self.is_bound(env[1:], node.id):
            imported = ', '.join(sorted(self.partial_imports[node.id]))
            self.add(node, 'module-attribute', '"%s" is not an allowed module and may be used only as %s' % (node.id, imported))
        if node.id in FORBIDDEN_NAMES:
            self.add(node, 'forbidden-name', '"%s" may not be used' % node.id)
        elif node.id in FORBIDDEN_CALLS and isinstance(node.ctx, ast.Load) and not self.is_bound(env, node.id):
            if id(node) in self.called:
                self.add(node, 'forbidden-call', 'calling the builtin "%s" is not allowed' % node.id)
            else:
                self.add(node, 'forbidden-name', 'the builtin "%s" may not be used, not even without a call' % node.id)

    def module_of(self, node, env):
        """The imported module a name stands for, when it is one bound at module level."""
        if isinstance(node, ast.Name) and node.id in self.modules and not self.is_bound(env[1:], node.id):
            return self.modules[node.id]
        return None

    def check_module_member(self, node, target, attr, env):
        module = self.module_of(target, env)
        if module is None or not attr.startswith('_') or attr in HARMLESS_MODULE_DUNDERS:
            return
        message = '"%s" is a private attribute of the module "%s"' % (attr, module)
        if isinstance(node, ast.Attribute):
            self.add_at_name(node, 'forbidden-attribute', message)
        else:
            self.add(node, 'forbidden-attribute', message)

    def check_attribute(self, node, env, outermost):
        if node.attr in FORBIDDEN_ATTRIBUTES:
            self.add_at_name(node, 'forbidden-attribute', 'the attribute "%s" may not be used' % node.attr)
            return
        self.check_module_member(node, node.value, node.attr, env)
        if not outermost:
            return
        parts, base = [], node
        while isinstance(base, ast.Attribute):
            parts.append(base.attr)
            base = base.value
        if not isinstance(base, ast.Name) or base.id not in self.partial_imports:
            return
        if self.is_bound(env[1:], base.id):
            return
        parts.reverse()
        dotted = [base.id + '.' + '.'.join(parts[:i]) for i in range(1, len(parts) + 1)]
        if not any(self.allowed(d) for d in dotted):
            imported = ', '.join(sorted(self.partial_imports[base.id]))
            self.add(node, 'module-attribute', '"%s" is not an allowed module (only %s was imported)' % (dotted[0], imported))

    def check_call(self, node, env):
        func = node.func
        if isinstance(func, ast.Name):
            self.called.add(id(func))
            if func.id in ATTRIBUTE_FUNCTIONS and not self.is_bound(env, func.id) and len(node.args) >= 2:
                name = node.args[1]
                if isinstance(name, ast.Constant) and isinstance(name.value, str):
                    if name.value in FORBIDDEN_ATTRIBUTES:
                        self.add(name, 'forbidden-attribute', 'the attribute "%s" may not be used' % name.value)
                    else:
                        self.check_module_member(name, node.args[0], name.value, env)

    # -- annotations: strings in them are evaluated by typing, pydantic and FastAPI ----------------

    def check_annotation(self, annotation, env, pending):
        for node in ast.walk(annotation):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter('ignore')
                        inner = ast.parse(node.value.strip(), mode='eval')
                except (SyntaxError, ValueError, MemoryError, RecursionError):
                    continue  # not an expression: typing would fail on it too
                for sub in ast.walk(inner):
                    # A problem inside the string is shown where the string starts.
                    ast.copy_location(sub, node)
                    sub.from_string = True
                pending.append((inner.body, env))

    # -- the app object ----------------------------------------------------------------------

    def check_entry(self, tree):
        constructors, modules = set(), set()
        for stmt in tree.body:
            if isinstance(stmt, ast.ImportFrom) and stmt.module == 'fastapi' and not stmt.level:
                constructors.update(a.asname or a.name for a in stmt.names if a.name == 'FastAPI')
            elif isinstance(stmt, ast.Import):
                modules.update(a.asname or a.name for a in stmt.names if a.name == 'fastapi')
        for stmt in tree.body:
            if isinstance(stmt, ast.Assign):
                targets, value = stmt.targets, stmt.value
            elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
                targets, value = [stmt.target], stmt.value
            else:
                continue
            if not any(isinstance(t, ast.Name) and t.id == 'app' for t in targets):
                continue
            if not isinstance(value, ast.Call):
                continue
            func = value.func
            if isinstance(func, ast.Name) and func.id in constructors:
                return
            if isinstance(func, ast.Attribute) and func.attr == 'FastAPI' and isinstance(func.value, ast.Name) and func.value.id in modules:
                return
        self.problems.append({
            'line': 0, 'column': 0, 'rule': 'fastapi-app',
            'message': 'the entry file must create the application at module level: app = FastAPI(...) '
                       '(with "from fastapi import FastAPI" or "import fastapi")',
        })

    # -- the walk ------------------------------------------------------------------------------

    def run(self):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter('ignore')
                tree = ast.parse(self.source, filename=self.path)
        except SyntaxError as e:
            if e.lineno is None and '\0' in self.source:
                before = self.source[:self.source.index('\0')]
                line = before.count('\n') + 1
                column = len(before) - (before.rfind('\n') + 1) + 1
            else:
                line, column = e.lineno or 0, e.offset or 0
            self.problems.append({'line': line, 'column': column, 'rule': 'syntax', 'message': e.msg})
            return self.problems
        except (MemoryError, RecursionError):
            self.problems.append({'line': 0, 'column': 0, 'rule': 'too-complex',
                                  'message': 'the file is nested too deeply for the Python parser'})
            return self.problems

        module_level = set(map(id, tree.body))
        for stmt in tree.body:
            if isinstance(stmt, ast.Import):
                self.check_import(stmt, True)
            elif isinstance(stmt, ast.ImportFrom):
                self.check_import_from(stmt, True)

        inner_attributes = set()
        scopes = FUNCTIONS + (ast.Lambda, ast.ClassDef) + COMPREHENSIONS
        module_env = ((self.bindings(tree), False),)
        pending = [(child, module_env) for child in tree.body]
        while pending and len(self.problems) < MAX_PROBLEMS:
            node, env = pending.pop()
            kind = type(node)
            if kind is ast.Name:
                self.check_name(node, env)
                continue
            if kind is ast.Attribute:
                # Parents come off the stack before their children: an inner link is marked in time.
                if type(node.value) is ast.Attribute:
                    inner_attributes.add(id(node.value))
                elif type(node.value) is ast.Name:
                    self.attribute_bases.add(id(node.value))
                self.check_attribute(node, env, id(node) not in inner_attributes)
            elif kind is ast.Call:
                self.check_call(node, env)
            elif kind is ast.Import:
                if id(node) not in module_level:
                    self.check_import(node, False)
            elif kind is ast.ImportFrom:
                if id(node) not in module_level:
                    self.check_import_from(node, False)
            elif kind is ast.AnnAssign:
                self.check_annotation(node.annotation, env, pending)
            elif kind in FUNCTIONS:
                a = node.args
                for arg in (*a.posonlyargs, *a.args, *a.kwonlyargs, a.vararg, a.kwarg):
                    if arg is not None and arg.annotation is not None:
                        self.check_annotation(arg.annotation, env, pending)
                if node.returns is not None:
                    self.check_annotation(node.returns, env, pending)
            if kind in scopes:
                pending.extend(self.children(node, env))
            else:
                pending.extend((child, env) for child in ast.iter_child_nodes(node))

        if self.entry:
            self.check_entry(tree)
        self.problems.sort(key=lambda p: (p['line'], p['column']))
        if len(self.problems) >= MAX_PROBLEMS:
            del self.problems[MAX_PROBLEMS:]
            self.problems.append({'line': 0, 'column': 0, 'rule': 'limit',
                                  'message': 'more problems were found than are listed (%d shown)' % MAX_PROBLEMS})
        return self.problems


def check(request_json):
    request = json.loads(request_json)
    checker = Checker(request['path'], request['source'], request['entry'], request['allowed'], request['local'])
    return json.dumps(checker.run())


def stdlib_modules():
    return json.dumps(sorted(sys.stdlib_module_names))
`
