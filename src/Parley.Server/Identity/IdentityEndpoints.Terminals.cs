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

        // Lets a user type into (and resize) a session, or stops them: its owner or a hub admin, while it runs.
        app.MapPost("/api/terminals/{id}/grants", context => HandleAuthenticatedAsync(context, identity, readBody: true, (caller, body) =>
        {
            var id = (string)context.Request.RouteValues["id"]!;
            var terminal = terminals.Find(id) ?? throw new IdentityException(IdentityErrorKind.NotFound, "session_not_found", $"no terminal session {id} on this hub (see GET /api/terminals)");
            if (caller.Name != terminal.Owner && !caller.IsAdmin)
            {
                throw new IdentityException(IdentityErrorKind.Forbidden, "forbidden", $"only {terminal.Owner}, who runs session {id}, or a hub admin grants input");
            }
            if (terminal.HasEnded)
            {
                throw new IdentityException(IdentityErrorKind.Conflict, "session_ended", $"session {id} has ended");
            }
            if (body.ValueKind != JsonValueKind.Object || !body.TryGetProperty("user", out var user) || user.ValueKind != JsonValueKind.String || !Names.IsValid(user.GetString()!)
                || (body.TryGetProperty("input", out var input) && input.ValueKind is not (JsonValueKind.True or JsonValueKind.False)))
            {
                throw new IdentityException(IdentityErrorKind.BadRequest, "invalid_payload", "send {user: NAME, input: true|false}");
            }
            var allowed = !body.TryGetProperty("input", out var flag) || flag.ValueKind == JsonValueKind.True;
            var name = user.GetString()!; // the body's document is gone by the time the response is written
            terminal.Grant(name, allowed);
            return Task.FromResult<(int, Action<Utf8JsonWriter>)>((StatusCodes.Status200OK, w =>
            {
                w.WriteString("id", id);
                w.WriteString("user", name);
                w.WriteBoolean("input", allowed);
            }));
        }));
    }

    private static (int Status, Action<Utf8JsonWriter> Write) Terminals(HttpContext context, TerminalRegistry terminals)
    {
        var all = context.Request.Query["all"].ToString() is "true" or "1";
        var list = terminals.List(includeEnded: all);
        return (StatusCodes.Status200OK, w => TerminalChannel.WriteSessionList(w, list));
    }
}
