using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Parley.Hub.Terminals;
using Parley.Identity;

namespace Parley.Server.Identity;

// ASP0016 misreads the inner handler lambdas as request delegates (as in IdentityEndpoints.cs).
#pragma warning disable ASP0016
internal static partial class IdentityEndpoints
{
    /// <summary>
    /// <c>GET /api/terminals[?all=true]</c> (docs/protocol.md §17): the live terminal sessions (with <c>all</c>, also
    /// the ended or abandoned ones whose recordings the hub still holds), for any signed-in caller; on a hub
    /// without authentication, for anyone.
    /// </summary>
    public static void MapTerminals(IEndpointRouteBuilder app, IdentityService identity, TerminalRegistry terminals, bool anonymous)
    {
        app.MapGet("/api/terminals", context =>
            anonymous && context.Request.Headers.Authorization.Count == 0
                ? RunAsync(context, () => Task.FromResult(Terminals(context, terminals)))
                : HandleAuthenticatedAsync(context, identity, readBody: false, (_, _) => Task.FromResult(Terminals(context, terminals))));
    }

    private static (int Status, Action<Utf8JsonWriter> Write) Terminals(HttpContext context, TerminalRegistry terminals)
    {
        var all = context.Request.Query["all"].ToString() is "true" or "1";
        var list = terminals.List(includeEnded: all);
        return (StatusCodes.Status200OK, w =>
        {
            w.WriteStartArray("sessions");
            foreach (var terminal in list)
            {
                terminal.WriteSummary(w);
            }
            w.WriteEndArray();
        });
    }
}
