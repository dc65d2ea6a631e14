// Reference peer for the benchmarks (bench/compare, docs/benchmarks.md): an ASP.NET Core SignalR hub
// with groups, written the way a typical SignalR user would write it — default options, JSON protocol.
//
//   dotnet Parley.Bench.SignalRPeer.dll [--urls http://127.0.0.1:5100]
//
// Port 0 picks a free port. Only loopback addresses are accepted. Once listening it prints one line:
//   {"event":"listening","url":"http://127.0.0.1:PORT"}
using System.Net;
using System.Text.Json;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.SignalR;

const string DefaultUrl = "http://127.0.0.1:5100";

var urls = DefaultUrl;
for (var i = 0; i < args.Length; i++)
{
    var arg = args[i];
    if (arg is "-h" or "--help")
    {
        Console.WriteLine("usage: Parley.Bench.SignalRPeer [--urls http://127.0.0.1:PORT[;...]]   (loopback only; port 0 picks a free port)");
        return 0;
    }
    if (arg == "--urls" && i + 1 < args.Length)
    {
        urls = args[++i];
    }
    else if (arg.StartsWith("--urls=", StringComparison.Ordinal))
    {
        urls = arg["--urls=".Length..];
    }
    else
    {
        Console.Error.WriteLine($"signalr peer: unknown argument '{arg}' (see --help)");
        return 2;
    }
}

foreach (var url in urls.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
{
    if (!Uri.TryCreate(url, UriKind.Absolute, out var uri) || !IsLoopback(uri.Host))
    {
        Console.Error.WriteLine($"signalr peer: refusing '{url}': only loopback http URLs are allowed (e.g. http://127.0.0.1:0)");
        return 2;
    }
}

var builder = WebApplication.CreateBuilder(new WebApplicationOptions { Args = [] });
builder.WebHost.UseUrls(urls);
builder.Logging.SetMinimumLevel(LogLevel.Warning);
builder.Services.AddSignalR();

var app = builder.Build();
app.MapHub<BenchHub>("/hub");

await app.StartAsync();

var bound = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()?.Addresses.FirstOrDefault()
    ?? throw new InvalidOperationException("server reported no bound address");
Console.WriteLine(JsonSerializer.Serialize(new Dictionary<string, string> { ["event"] = "listening", ["url"] = bound.TrimEnd('/') }));
Console.Out.Flush();

await app.WaitForShutdownAsync();
return 0;

static bool IsLoopback(string host) =>
    host.Equals("localhost", StringComparison.OrdinalIgnoreCase)
    || (IPAddress.TryParse(host.Trim('[', ']'), out var ip) && IPAddress.IsLoopback(ip));

/// <summary>The benchmark hub: join a group, publish to a group. Publish returns after the group send.</summary>
internal sealed class BenchHub : Hub
{
    public async Task<bool> Join(string channel)
    {
        await Groups.AddToGroupAsync(Context.ConnectionId, channel);
        return true;
    }

    public async Task<bool> Publish(string channel, string body)
    {
        await Clients.Group(channel).SendAsync("msg", body);
        return true;
    }
}
