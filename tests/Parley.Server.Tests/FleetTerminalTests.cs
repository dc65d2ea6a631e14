using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Parley.Client;
using Parley.Server.Tests.Infrastructure;

namespace Parley.Server.Tests;

/// <summary>
/// Fleet instances created with <c>terminal: true</c> (docs/fleet.md, Terminal): the hub runs them under a
/// pseudo-terminal it hosts as a live terminal session, with the same protocol as <c>parley run</c>'s sessions.
/// </summary>
public sealed class FleetTerminalTests : AuthenticatedHubTest
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(10);

    protected override void ConfigureServer(ServerOptions options)
    {
        options.Fleet.StopGracePeriod = TimeSpan.FromSeconds(3);
        options.Fleet.BackoffInitial = TimeSpan.FromMilliseconds(50);
        options.Fleet.BackoffMax = TimeSpan.FromMilliseconds(100);
        options.Terminals.UpdateInterval = TimeSpan.FromMilliseconds(200);
    }

    private Task<JsonNode> Api(HttpMethod method, string path, object? body = null, HttpStatusCode expect = HttpStatusCode.OK) =>
        Id.CallAsync(method, path, body, expect: expect);

    private static object Instance(string name, string script, string restart = "never") =>
        new { name, command = "/bin/sh", args = new[] { "-c", script }, restart, terminal = true, start = true };

    // Collects a viewer's output (backfill to the seam, then live frames; a resync is filled in) until `until` holds.
    private static async Task<string> OutputUntilAsync(ParleyClient viewer, string id, StringBuilder seen, Func<string, bool> until)
    {
        using var timeout = new CancellationTokenSource(Wait);
        while (!until(seen.ToString()))
        {
            var message = await viewer.Messages.ReadAsync(timeout.Token);
            if (message.Topic == "term:" + id && message.Event == "output" && message.IsBinary)
            {
                seen.Append(Encoding.UTF8.GetString(message.Binary.Span));
            }
        }
        return seen.ToString();
    }

    private static async Task<StringBuilder> WatchAsync(ParleyClient viewer, string id, bool canInput)
    {
        var joined = await viewer.JoinAsync("term:" + id);
        Assert.True(joined.IsOk, joined.Response.ToString());
        Assert.Equal(canInput, joined.Response.GetProperty("can_input").GetBoolean());
        var seam = joined.Response.GetProperty("output_size").GetInt32();
        if (seam == 0)
        {
            return new StringBuilder();
        }
        var backfill = await viewer.PushAsync("term:" + id, "fetch_output", new { offset = 0, limit = seam });
        return new StringBuilder(Encoding.UTF8.GetString(backfill.Binary.Span));
    }

    private static async Task<ClientMessage> EventAsync(ParleyClient client, string topic, string @event)
    {
        using var timeout = new CancellationTokenSource(Wait);
        while (true)
        {
            var message = await client.Messages.ReadAsync(timeout.Token);
            if (message.Topic == topic && message.Event == @event)
            {
                return message;
            }
        }
    }

    private async Task<string[]> LogLinesAsync(string name) =>
        [.. (await Api(HttpMethod.Get, $"/api/instances/{name}/logs?tail=200"))["lines"]!.AsArray().Select(l => l!.GetValue<string>())];

    private static async Task EventuallyAsync(Func<Task<bool>> condition, string what)
    {
        var deadline = DateTime.UtcNow + Wait;
        while (!await condition())
        {
            Assert.True(DateTime.UtcNow < deadline, what);
            await Task.Delay(50);
        }
    }

    [Fact]
    public async Task An_instance_runs_on_a_hosted_terminal_that_viewers_watch_admins_type_into_and_its_log_gets_as_plain_lines()
    {
        var created = await Api(HttpMethod.Post, "/api/instances",
            Instance("shell", "tty; stty size; printf '\\033[1;32mgreen\\033[0m\\n'; echo ready; exec cat"), HttpStatusCode.Created);
        Assert.True(created["terminal"]!.GetValue<bool>());
        var id = created["terminal_id"]!.GetValue<string>();
        Assert.Equal("running", created["status"]!.GetValue<string>());

        var listed = (await Api(HttpMethod.Get, "/api/terminals"))["sessions"]!.AsArray().Single(s => s!["id"]!.GetValue<string>() == id)!;
        Assert.Equal(("shell", created["created_by"]!.GetValue<string>(), 120, 32),
            (listed["instance"]!.GetValue<string>(), listed["owner"]!.GetValue<string>(), listed["cols"]!.GetValue<int>(), listed["rows"]!.GetValue<int>()));
        Assert.Equal(created["pid"]!.GetValue<int>(), (await Api(HttpMethod.Get, "/api/instances/shell"))["pid"]!.GetValue<int>());

        // A member watches read-only: the raw bytes (escape sequences included) from a real terminal of the fleet's size.
        var mia = await ConnectAsUserAsync("mia");
        var miaSeen = await WatchAsync(mia, id, canInput: false);
        var output = await OutputUntilAsync(mia, id, miaSeen, s => s.Contains("ready", StringComparison.Ordinal));
        Assert.Matches(@"/dev/pts/\d+", output);
        Assert.Contains("32 120", output, StringComparison.Ordinal);
        Assert.Contains("\u001b[1;32mgreen\u001b[0m", output, StringComparison.Ordinal);
        var refused = await mia.PushAsync("term:" + id, "input", new { data_b64 = Convert.ToBase64String("x\r"u8.ToArray()) });
        Assert.Equal("forbidden", refused.Reason);
        Assert.Equal("forbidden", (await mia.PushAsync("term:" + id, "resize", new { cols = 80, rows = 20 })).Reason);

        // Nobody joins a hub-run session as its owner, not even an admin.
        var admin = await ConnectAsync(Id.OwnerKey);
        var takeover = await admin.JoinAsync("term:" + id, joinParams: new JsonObject { ["role"] = "owner", ["command"] = new JsonArray("sh"), ["cols"] = 80, ["rows"] = 24, ["started_at"] = 0 });
        Assert.Equal("forbidden", takeover.Response.GetProperty("reason").GetString());

        // An admin types: the line reaches cat through the terminal, and every viewer sees the echo.
        var adminSeen = await WatchAsync(admin, id, canInput: true);
        Assert.True((await admin.PushAsync("term:" + id, "input", new { data_b64 = Convert.ToBase64String("hello fleet\r"u8.ToArray()) })).IsOk);
        await OutputUntilAsync(mia, id, miaSeen, s => s.Split("hello fleet").Length >= 3); // the terminal's echo, then cat's copy
        Assert.True((await admin.PushAsync("term:" + id, "resize", new { cols = 100, rows = 30 })).IsOk);
        var resized = await EventAsync(mia, "term:" + id, "resize");
        Assert.Equal((100, 30), (resized.Payload.GetProperty("cols").GetInt32(), resized.Payload.GetProperty("rows").GetInt32()));

        // The instance log has the same output as text lines of stream tty, escape sequences removed.
        await EventuallyAsync(async () => (await LogLinesAsync("shell")).Any(l => l.EndsWith(" tty hello fleet", StringComparison.Ordinal)), "the typed line in the log");
        var lines = await LogLinesAsync("shell");
        Assert.Contains(lines, l => l.EndsWith(" tty green", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.EndsWith(" tty ready", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.Contains($" hub started pid {created["pid"]} on terminal {id}", StringComparison.Ordinal));

        // Stop: cat gets SIGTERM; the session ends with that signal and leaves the live listing, its recording whole.
        var stopped = await Api(HttpMethod.Post, "/api/instances/shell/stop");
        Assert.Equal(("stopped", 143, 15), (stopped["status"]!.GetValue<string>(), stopped["exit_code"]!.GetValue<int>(), stopped["signal"]!.GetValue<int>()));
        Assert.Equal(id, stopped["terminal_id"]!.GetValue<string>());
        var exit = await EventAsync(mia, "term:" + id, "exit");
        Assert.Equal(15, exit.Payload.GetProperty("signal").GetInt32());
        Assert.DoesNotContain((await Api(HttpMethod.Get, "/api/terminals"))["sessions"]!.AsArray(), s => s!["id"]!.GetValue<string>() == id);
        var ended = (await Api(HttpMethod.Get, "/api/terminals?all=true"))["sessions"]!.AsArray().Single(s => s!["id"]!.GetValue<string>() == id)!;
        Assert.NotNull(ended["ended_at"]);
        var recording = await File.ReadAllBytesAsync(Path.Combine(Hub.DataDir, "terminals", id + ".output"));
        var whole = await mia.PushAsync("term:" + id, "fetch_output", new { offset = 0, limit = recording.Length + 10 });
        Assert.Equal(recording, whole.Binary.ToArray());
        Assert.StartsWith(miaSeen.ToString(), Encoding.UTF8.GetString(recording), StringComparison.Ordinal);
        var typed = await mia.PushAsync("term:" + id, "fetch_input", new { offset = 0, limit = 1000 });
        Assert.Equal("hello fleet\r", Encoding.UTF8.GetString(typed.Binary.Span));
        Assert.Equal("session_ended", (await admin.PushAsync("term:" + id, "input", new { data_b64 = "eA==" })).Reason);
        _ = adminSeen;
    }

    [Fact]
    public async Task Each_run_gets_its_own_session_with_its_exit_code_and_a_grant_lets_a_member_type()
    {
        var created = await Api(HttpMethod.Post, "/api/instances", Instance("flaky", "echo run; read line; echo \"got $line\"; exit 7", restart: "on-failure"), HttpStatusCode.Created);
        var first = created["terminal_id"]!.GetValue<string>();

        // A member granted input by an admin types the line that ends the run.
        var mia = await ConnectAsUserAsync("mia");
        Assert.True((await mia.JoinAsync("term:" + first)).IsOk);
        await Api(HttpMethod.Post, $"/api/terminals/{first}/grants", new { user = "mia", input = true });
        Assert.True((await EventAsync(mia, "term:" + first, "can_input")).Payload.GetProperty("can_input").GetBoolean());
        Assert.True((await mia.PushAsync("term:" + first, "input", new { data_b64 = Convert.ToBase64String("bye\r"u8.ToArray()) })).IsOk);
        var exit = await EventAsync(mia, "term:" + first, "exit");
        Assert.Equal(7, exit.Payload.GetProperty("exit_code").GetInt32());

        // on-failure restarts it on a new terminal session; the first stays readable, ended with code 7.
        string? second = null;
        await EventuallyAsync(async () =>
        {
            var now = await Api(HttpMethod.Get, "/api/instances/flaky");
            second = now["terminal_id"]?.GetValue<string>();
            return now["status"]!.GetValue<string>() == "running" && second != first;
        }, "a restart on a new session");
        var sessions = (await Api(HttpMethod.Get, "/api/terminals?all=true"))["sessions"]!.AsArray();
        var ended = sessions.Single(s => s!["id"]!.GetValue<string>() == first)!;
        Assert.Equal(7, ended["exit_code"]!.GetValue<int>());
        Assert.Contains(sessions, s => s!["id"]!.GetValue<string>() == second && s["ended_at"] is null);
        await EventuallyAsync(async () => (await LogLinesAsync("flaky")).Any(l => l.EndsWith(" tty got bye", StringComparison.Ordinal)), "the run's answer in the log");
        await Api(HttpMethod.Post, "/api/instances/flaky/stop");
    }

    [Fact]
    public async Task A_line_longer_than_the_log_line_limit_is_logged_in_pieces_that_each_fit()
    {
        await Api(HttpMethod.Post, "/api/instances", Instance("wide", "head -c 40000 /dev/zero | tr '\\0' x; echo; echo end"), HttpStatusCode.Created);
        await EventuallyAsync(async () => (await LogLinesAsync("wide")).Any(l => l.EndsWith(" tty end", StringComparison.Ordinal)), "the line after the long one");
        var pieces = (await LogLinesAsync("wide")).Where(l => l.Contains(" tty x", StringComparison.Ordinal)).Select(l => l[(l.IndexOf(" tty ", StringComparison.Ordinal) + 5)..]).ToArray();
        Assert.Equal([16384, 16384, 40000 - 2 * 16384], pieces.Select(p => p.Length));
        Assert.All(pieces, p => Assert.Equal(p.Length, p.Count(c => c == 'x')));
    }

    [Fact]
    public async Task A_command_that_cannot_run_fails_its_start_with_the_reason_and_lists_no_session()
    {
        var created = await Api(HttpMethod.Post, "/api/instances",
            new { name = "ghost", command = "/nonexistent/agent", terminal = true, start = true }, HttpStatusCode.Created);
        Assert.Equal("exited", created["status"]!.GetValue<string>());
        Assert.Contains("/nonexistent/agent", created["error"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.Null(created["terminal_id"]);
        Assert.Empty((await Api(HttpMethod.Get, "/api/terminals"))["sessions"]!.AsArray());
        var bad = await Api(HttpMethod.Post, "/api/instances", new { name = "bad", command = "/bin/true", terminal = "yes" }, HttpStatusCode.BadRequest);
        Assert.Contains("terminal", bad.ToJsonString(), StringComparison.Ordinal);
    }
}
